"""The registry's sync feed through the gateway, as a commune officer's phone keeps its children (docs/clients.md):
new and changed records, a 304 on a record the phone holds, a 412 that links the current version, and tombstones
when a child moves to another commune or is merged into another record."""

import uuid

import asyncpg

from tests.helpers import Api
from tests.registry.conftest import Registry, next_commune
from tests.replica import Replica

FEED = "/registry/v1/sync/children"


async def test_a_phone_keeps_its_communes_children_through_changes_moves_and_merges(
        api: Api, registry: Registry, stack_db: str) -> None:
    phone = Replica(api, FEED, registry.officer)
    stays = await registry.created()
    moves = await registry.created()
    survivor = await registry.created(full_name="Vũ Minh Khang", sex="male", date_of_birth="2013-09-09")
    retired = await registry.created(full_name="Vu Minh Khang", sex="male", date_of_birth="2013-09-09",
                                     confirm_not_duplicate=True)
    ids = {c["id"] for c in (stays, moves, survivor, retired)}
    await phone.sync_until(lambda r: ids <= set(r.records))
    assert phone.records[stays["id"]]["full_name"] == stays["full_name"]
    assert phone.etags[stays["id"]] == f'"{stays["id"]}.1"'

    # A change made elsewhere (another phone) wins; the phone's own, sent with its old ETag, gets a 412 that links
    # the current record; read there, merged and sent again, it is taken.
    changed = await registry.client.patch(f"/registry/v1/children/{stays['id']}", json={"address": "Số 1 Hàng Bạc"},
                                          headers=registry.officer | {"If-Match": phone.etags[stays["id"]]})
    assert changed.status_code == 200, changed.text
    stale = await registry.client.patch(f"/registry/v1/children/{stays['id']}", json={"school_name": "Kim Liên"},
                                        headers=registry.officer | {"If-Match": phone.etags[stays["id"]]})
    assert stale.status_code == 412 and stale.json()["current_etag"] == changed.headers["etag"]
    assert stale.json()["current"] == f"/registry/v1/children/{stays['id']}"
    current = await api.client.get(stale.json()["current"], headers=registry.officer)
    merged = await registry.client.patch(f"/registry/v1/children/{stays['id']}", json={"school_name": "Kim Liên"},
                                         headers=registry.officer | {"If-Match": current.headers["etag"]})
    assert merged.status_code == 200, merged.text

    # The child moves to another commune (recorded by the province's tools: a commune officer cannot move a child
    # out of reach), and two records of one child are merged.
    elsewhere = next_commune()
    connection = await asyncpg.connect(stack_db)
    try:
        await connection.execute("UPDATE child SET commune_code = $1, revision = revision + 1 WHERE id = $2",
                                 elsewhere, uuid.UUID(moves["id"]))
    finally:
        await connection.close()
    merge = await registry.client.post(f"/registry/v1/children/{survivor['id']}/merge",
                                       json={"merged_child_id": retired["id"]},
                                       headers=registry.officer | {"If-Match": f'"{survivor["id"]}.1"'})
    assert merge.status_code == 200, merge.text

    await phone.sync_until(lambda r: {moves["id"], retired["id"]} <= set(r.removed)
                           and r.records.get(stays["id"], {}).get("school_name") == "Kim Liên")
    assert phone.removed[moves["id"]]["reason"] == "out_of_reach"
    assert phone.removed[retired["id"]]["reason"] == "merged"
    assert phone.removed[retired["id"]]["merged_into"] == survivor["id"]
    assert phone.records[survivor["id"]]["revision"] == 2
    assert phone.etags[stays["id"]] == merged.headers["etag"]
    assert set(phone.records) == {stays["id"], survivor["id"]}

    # The officer of the commune the child moved to finds it on a first sync.
    newcomer = Replica(api, FEED, await api.commune_user("child_protection_officer", elsewhere))
    await newcomer.sync_until(lambda r: moves["id"] in r.records)


async def test_if_none_match_answers_304_while_the_record_is_current(registry: Registry) -> None:
    child = await registry.created()
    read = await registry.get(child["id"])
    assert read.status_code == 200
    etag = read.headers["etag"]
    unchanged = await registry.client.get(f"/registry/v1/children/{child['id']}",
                                          headers=registry.officer | {"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    changed = await registry.client.patch(f"/registry/v1/children/{child['id']}", json={"address": "Ngõ 5"},
                                          headers=registry.officer | {"If-Match": etag})
    assert changed.status_code == 200, changed.text
    again = await registry.client.get(f"/registry/v1/children/{child['id']}",
                                      headers=registry.officer | {"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] == changed.headers["etag"] != etag
    assert again.json()["address"] == "Ngõ 5"


async def test_the_feed_is_for_those_who_list_children(api: Api, registry: Registry) -> None:
    assert (await api.client.get(FEED, headers=await api.as_demo("hotline_operator"))).status_code == 403
    other = await api.commune_user("child_protection_officer", next_commune())
    page = (await api.client.get(FEED, headers=registry.officer)).json()
    assert (await api.client.get(FEED, params={"cursor": page["next_cursor"]}, headers=other)).status_code == 410
