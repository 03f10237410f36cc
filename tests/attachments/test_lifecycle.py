"""A file's life after its upload: download links that expire, soft delete with a reason, purge after the retention
period unless under legal hold, rewrapping after a master-key rotation, and what events and the audit log keep."""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from services.cases import attachments
from services.cases.settings import CasesSettings
from services.common.clock import utcnow
from services.common.db import Database
from services.common.locations import province_of
from services.common.storage import ObjectNotFound, ObjectStore, new_master_keys_json
from tests.attachments.conftest import Files, pdf, photo, sweep_now
from tests.helpers import OTHER_COMMUNE, Api


def forged_link(store: ObjectStore, attachment_id: str, subject_id: str, expires_in: float,
                commune: str = "00070") -> str:
    """A link signed as the service signs them (the test holds the same master keys), with any expiry."""
    claims = {"a": attachment_id, "s": subject_id, "r": "child_protection_officer", "g": "peoples_committee",
              "j": {"level": "commune", "province": province_of(commune), "commune": commune},
              "e": int((utcnow() + timedelta(seconds=expires_in)).timestamp())}
    payload = json.dumps(claims, separators=(",", ":")).encode()
    kid, key = store.keys.derive("attachment-link")
    signature = hmac.new(key, payload, hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"/cases/v1/attachment-links/{b64(payload)}.{kid}.{b64(signature)}"


async def officer_id(api: Api, headers: dict[str, str]) -> str:
    return str((await api.client.get("/auth/me", headers=headers)).json()["id"])


async def test_a_link_downloads_without_a_token_until_it_expires(api: Api, files: Files, store: ObjectStore,
                                                                 cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    content = photo()
    attachment = await files.attach(officer, case_id, content)
    issued = await api.client.post(f"/cases/v1/attachments/{attachment['id']}/link", headers=officer)
    assert issued.status_code == 200, issued.text
    link = issued.json()
    lifetime = (attachments.DownloadLink.model_validate(link).expires_at - utcnow()).total_seconds()
    assert 0 < lifetime <= cases_settings_for_tests.attachment_link_seconds <= 300
    async with httpx.AsyncClient(base_url=api.stack.url("gateway")) as anonymous:
        fetched = await anonymous.get(link["url"])
        assert fetched.status_code == 200, fetched.text
        assert hashlib.sha256(fetched.content).hexdigest() == attachment["sha256"]
        # A link whose signature or file was changed, or that has expired, leads nowhere.
        me = await officer_id(api, officer)
        assert (await anonymous.get(forged_link(store, attachment["id"], me, 60))).status_code == 200
        assert (await anonymous.get(forged_link(store, attachment["id"], me, -1))).status_code == 404
        tampered = link["url"][:-3] + ("AAA" if not link["url"].endswith("AAA") else "BBB")
        assert (await anonymous.get(tampered)).status_code == 404
        payload, kid, signature = link["url"].rsplit("/", 1)[1].split(".")
        other = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        other["a"] = str(uuid.uuid4())
        swapped = base64.urlsafe_b64encode(json.dumps(other).encode()).decode().rstrip("=")
        assert (await anonymous.get(f"/cases/v1/attachment-links/{swapped}.{kid}.{signature}")).status_code == 404
        # The link names its user, whose reach is checked again: another commune's officer gets nothing.
        stranger = forged_link(store, attachment["id"], me, 60, commune=OTHER_COMMUNE)
        assert (await anonymous.get(stranger)).status_code == 404
        # Only a file's own routes take no token.
        assert (await anonymous.get(f"/cases/v1/attachments/{attachment['id']}/content")).status_code == 401


async def test_delete_hold_and_purge(api: Api, files: Files, store: ObjectStore, cases_database: Database,
                                     cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    plain = await files.attach(officer, case_id, pdf(3000), kind="other")
    held = await files.attach(officer, case_id, pdf(3000), kind="police_record")
    url = f"/cases/v1/attachments/{plain['id']}"

    stale = await api.client.post(f"{url}/delete", headers=officer | {"If-Match": '"9"'}, json={"reason": "x"})
    assert stale.status_code == 412 and stale.json()["current_etag"] == '"1"'
    deleted = await api.client.post(f"{url}/delete", headers=officer | {"If-Match": '"1"'},
                                    json={"reason": "Tải nhầm hồ sơ"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["delete_reason"] == "Tải nhầm hồ sơ" and deleted.headers["etag"] == '"2"'
    again = await api.client.post(f"{url}/delete", headers=officer | {"If-Match": '"2"'}, json={"reason": "x"})
    assert again.status_code == 409
    assert (await files.content(officer, plain["id"])).status_code == 404
    listed = (await api.client.get(f"/cases/v1/cases/{case_id}/attachments", headers=officer)).json()["items"]
    assert [a["id"] for a in listed] == [held["id"]]
    with_deleted = await api.client.get(f"/cases/v1/cases/{case_id}/attachments", headers=officer,
                                        params={"include_deleted": "true"})
    assert {a["id"] for a in with_deleted.json()["items"]} == {plain["id"], held["id"]}

    hold_url = f"/cases/v1/attachments/{held['id']}/legal-hold"
    hold = await api.client.put(hold_url, headers=officer | {"If-Match": '"1"'},
                                json={"hold": True, "reason": "Cơ quan điều tra yêu cầu giữ"})
    assert hold.status_code == 200 and hold.json()["legal_hold"] is True
    await api.client.post(f"/cases/v1/attachments/{held['id']}/delete", headers=officer | {"If-Match": '"2"'},
                          json={"reason": "Không còn cần"})

    keys = await object_keys(cases_database, plain["id"], held["id"])
    retention = timedelta(days=cases_settings_for_tests.attachment_retention_days)
    # Within the retention period nothing is purged.
    early = await sweep_now(cases_database, store, cases_settings_for_tests, utcnow() + retention / 2)
    assert early.purged == 0
    report = await sweep_now(cases_database, store, cases_settings_for_tests,
                                     utcnow() + retention + timedelta(days=1))
    assert report.purged >= 1
    with pytest.raises(ObjectNotFound):
        await store.open(keys[plain["id"]])
    reader = await store.open(keys[held["id"]])  # held: kept past its retention
    await reader.close()
    assert (await api.client.get(url, headers=officer)).status_code == 404  # purged: gone from the API too

    released = await api.client.put(hold_url, headers=officer | {"If-Match": '"3"'},
                                     json={"hold": False, "reason": "Vụ án đã xét xử xong"})
    assert released.status_code == 200, released.text
    await sweep_now(cases_database, store, cases_settings_for_tests, utcnow() + retention + timedelta(days=1))
    with pytest.raises(ObjectNotFound):
        await store.open(keys[held["id"]])


async def object_keys(database: Database, *ids: str) -> dict[str, str]:
    async with database.sessionmaker() as session:
        rows = await session.execute(text("SELECT id::text, object_key FROM attachment WHERE id::text = ANY(:ids)"),
                                     {"ids": list(ids)})
        return {row[0]: row[1] for row in rows}


async def test_after_a_master_key_rotation_files_are_rewrapped(api: Api, files: Files, cases_database: Database,
                                                               cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    content = pdf(200_000)
    attachment = await files.attach(officer, case_id, content, kind="other")
    current = json.loads(cases_settings_for_tests.master_keys_json)
    new = json.loads(new_master_keys_json("rotated"))
    rotated = cases_settings_for_tests.model_copy(update={"master_keys_json": json.dumps(
        {"active": "rotated", "keys": current["keys"] | new["keys"]})})
    back = cases_settings_for_tests.model_copy(update={"master_keys_json": json.dumps(
        {"active": current["active"], "keys": current["keys"] | new["keys"]})})
    for settings, key_id in ((rotated, "rotated"), (back, current["active"])):
        running = ObjectStore(settings)
        await running.start()
        try:
            report = await sweep_now(cases_database, running, settings)
            assert report.rewrapped >= 1
            async with cases_database.sessionmaker() as session:
                assert await session.scalar(text("SELECT key_id FROM attachment WHERE id = :id"),
                                            {"id": attachment["id"]}) == key_id
                assert await session.scalar(text("SELECT count(*) FROM attachment WHERE key_id <> :k "
                                                 "AND purged_at IS NULL"), {"k": key_id}) == 0
        finally:
            await running.close()
        if key_id == "rotated":
            # Readable with the new key alone: the old one could now be retired.
            alone = ObjectStore(settings.model_copy(update={"master_keys_json": json.dumps(new)}))
            await alone.start()
            key = (await object_keys(cases_database, attachment["id"]))[attachment["id"]]
            reader = await alone.open(key)
            assert b"".join([chunk async for chunk in reader]) == content
            await alone.close()
    assert (await files.content(officer, attachment["id"])).content == content


async def test_uploads_and_downloads_are_audited_and_events_carry_no_personal_data(
        api: Api, files: Files, cases_database: Database) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    attachment = await files.attach(officer, case_id, photo(), caption="Ảnh vết thương của Lan",
                                    filename="Lan-vet-thuong.jpg")
    await files.content(officer, attachment["id"])
    await api.client.post(f"/cases/v1/attachments/{attachment['id']}/link", headers=officer)
    me = await officer_id(api, officer)
    async with cases_database.sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT action, actor_id, purpose FROM audit_entry WHERE object_type = 'attachment' AND object_id = :id "
            "ORDER BY at"), {"id": attachment["id"]})).all()
    assert [(r.action, r.actor_id, r.purpose) for r in rows] == [
        ("upload", me, f"case:{case_id}"), ("download", me, f"case:{case_id}"), ("link", me, f"case:{case_id}")]

    token = await api.service_token("reporting", "events:read")
    async with httpx.AsyncClient(base_url=api.stack.url("cases")) as direct:
        page = (await direct.get("/internal/v1/events", params={"after": 0, "limit": 1000},
                                 headers={"Authorization": f"Bearer {token}"})).json()
        while page["has_more"]:
            page = (await direct.get("/internal/v1/events", params={"after": page["next_cursor"], "limit": 1000},
                                     headers={"Authorization": f"Bearer {token}"})).json()
    # The last page holds the newest events.
    added = [e for e in page["events"] if e["type"] == "attachment.added"
             and e["payload"]["attachment_id"] == attachment["id"]]
    assert len(added) == 1
    assert set(added[0]["payload"]) == {"attachment_id", "case_id", "kind", "province_code", "commune_code"}
    assert "Lan" not in json.dumps(added[0])
