"""The object store kit (`services/common/storage.py`) against the real SeaweedFS of this test run: streamed put and
get with envelope encryption, what a leaked bucket shows, tampering, master-key rotation, resumable parts, listing,
and a store that does not answer."""

import asyncio
import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiobotocore.session import get_session

from scripts.stack import ObjectStoreAccess, free_port
from services.common.storage import (
    CHUNK_BYTES,
    CHUNK_OVERHEAD,
    MIN_PART_BYTES,
    MasterKeys,
    MissingParts,
    ObjectCorrupted,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreSettings,
    ObjectStoreUnavailable,
    PartSizeMismatch,
    PartUpload,
    encrypted_size,
    new_master_keys_json,
)

MARKER = b"Nguyen Thi Lan, bruises on the left arm. "


def settings_for(access: ObjectStoreAccess, bucket: str, master_keys_json: str | None = None,
                 **changes: object) -> ObjectStoreSettings:
    return ObjectStoreSettings(object_store_url=access.url, object_store_access_key=access.access_key,
                               object_store_secret_key=access.secret_key, object_store_bucket=bucket,
                               master_keys_json=master_keys_json or access.master_keys_json, **changes)


@pytest.fixture(scope="session")
def bucket() -> str:
    # One bucket for the whole run: SeaweedFS gives each bucket volumes of its own.
    return f"kit-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(object_store_access: ObjectStoreAccess, bucket: str) -> AsyncIterator[ObjectStore]:
    running = ObjectStore(settings_for(object_store_access, bucket))
    await running.start()
    yield running
    await running.close()


async def pieces(data: bytes, size: int = 50_000) -> AsyncIterator[bytes]:
    """The data in pieces that do not line up with the encryption chunks, as a network delivers it."""
    for start in range(0, len(data), size):
        yield data[start:start + size]
        await asyncio.sleep(0)


async def read_all(store: ObjectStore, key: str) -> tuple[bytes, list[int]]:
    reader = await store.open(key)
    chunks = [chunk async for chunk in reader]
    return b"".join(chunks), [len(c) for c in chunks]


async def raw(access: ObjectStoreAccess, bucket: str, key: str, replace: bytes | None = None) -> bytes:
    """The stored bytes as anyone holding the bucket sees them; `replace` writes them back changed."""
    async with get_session().create_client("s3", endpoint_url=access.url, region_name="us-east-1",
                                           aws_access_key_id=access.access_key,
                                           aws_secret_access_key=access.secret_key) as client:
        if replace is not None:
            await client.put_object(Bucket=bucket, Key=key, Body=replace)
            return replace
        response = await client.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            return bytes(await body.read())


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES,
                                  MIN_PART_BYTES + 12_345, 2 * MIN_PART_BYTES + 3 * CHUNK_BYTES])
async def test_what_is_put_comes_back_whole_in_bounded_chunks(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    stored = await store.put(f"sizes/{size}", pieces(data))
    assert (stored.size, stored.sha256, stored.key_id) == (size, hashlib.sha256(data).hexdigest(), "test1")
    back, lengths = await read_all(store, f"sizes/{size}")
    assert back == data
    assert max(lengths, default=0) <= CHUNK_BYTES


async def test_a_leaked_bucket_shows_neither_the_content_nor_the_key(store: ObjectStore, bucket: str,
                                                                     object_store_access: ObjectStoreAccess) -> None:
    data = MARKER * 40_000  # 1.6 MB of text that repeats: plaintext would show at once
    await store.put("leak/one", pieces(data))
    stored = await raw(object_store_access, bucket, "leak/one")
    assert stored.startswith(b"CPE1")
    assert MARKER[:16] not in stored and b"Nguyen" not in stored
    header = 4 + 4 + 1 + len("test1") + 12 + 32 + 16
    assert len(stored) == header + encrypted_size(len(data))
    # The same content stored twice looks unrelated: a fresh data key and fresh nonces each time.
    await store.put("leak/two", pieces(data))
    again = await raw(object_store_access, bucket, "leak/two")
    assert stored[header:header + 4096] != again[header:header + 4096]
    master = json.loads(object_store_access.master_keys_json)["keys"]["test1"].encode()
    assert master not in stored


async def test_changed_cut_or_reordered_bytes_are_refused(store: ObjectStore, bucket: str,
                                                          object_store_access: ObjectStoreAccess) -> None:
    data = os.urandom(5 * CHUNK_BYTES + 100)
    await store.put("tamper/original", pieces(data))
    stored = await raw(object_store_access, bucket, "tamper/original")
    header = len(stored) - encrypted_size(len(data))
    sealed = CHUNK_BYTES + CHUNK_OVERHEAD
    chunks = [stored[header + i * sealed: header + (i + 1) * sealed] for i in range(6)]

    flipped = bytearray(stored)
    flipped[header + 3 * sealed + 500] ^= 0x01
    swapped = stored[:header] + chunks[1] + chunks[0] + b"".join(chunks[2:])
    without_last = stored[:header] + b"".join(chunks[:5])
    other_key = bytearray(stored)
    other_key[20] ^= 0x01  # inside the wrapped data key
    for label, changed in [("flipped", bytes(flipped)), ("swapped", swapped), ("cut", without_last),
                           ("key", bytes(other_key))]:
        await raw(object_store_access, bucket, f"tamper/{label}", replace=changed)
        delivered = b""
        with pytest.raises(ObjectCorrupted):
            reader = await store.open(f"tamper/{label}")
            async for chunk in reader:
                delivered += chunk
        # Only chunks that passed authentication were handed on, and they are the original ones.
        assert data.startswith(delivered), label
        assert len(delivered) < len(data), label


async def test_master_keys_rotate_and_old_objects_are_rewrapped(object_store_access: ObjectStoreAccess,
                                                                bucket: str) -> None:
    old = json.loads(new_master_keys_json("2026-01"))
    new = json.loads(new_master_keys_json("2026-07"))
    before = ObjectStore(settings_for(object_store_access, bucket, json.dumps(old)))
    both = ObjectStore(settings_for(object_store_access, bucket, json.dumps(
        {"active": "2026-07", "keys": old["keys"] | new["keys"]})))
    after = ObjectStore(settings_for(object_store_access, bucket, json.dumps(new)))
    for running in (before, both, after):
        await running.start()
    try:
        data = os.urandom(2 * MIN_PART_BYTES)
        assert (await before.put("rotate/a", pieces(data))).key_id == "2026-01"
        # With the new key active, the old object still reads (its key id names the old key), new ones use the new.
        assert (await read_all(both, "rotate/a"))[0] == data
        assert (await both.put("rotate/b", pieces(b"new"))).key_id == "2026-07"
        # Once the old key is gone, only rewrapped objects read.
        with pytest.raises(ObjectCorrupted):
            await after.open("rotate/a")
        assert await both.key_id("rotate/a") == "2026-01"
        assert await both.rewrap("rotate/a") == "2026-07"
        assert await both.rewrap("rotate/a") == "2026-07"  # nothing to do the second time
        assert await after.key_id("rotate/a") == "2026-07"
        assert (await read_all(after, "rotate/a"))[0] == data
    finally:
        for running in (before, both, after):
            await running.close()


async def interrupted(data: bytes, after: int) -> AsyncIterator[bytes]:
    """A part whose connection breaks after `after` bytes."""
    yield data[:after]
    raise ConnectionResetError("the phone lost its network")


async def test_a_resumable_upload_survives_a_break_and_parts_in_any_order(store: ObjectStore) -> None:
    data = os.urandom(2 * MIN_PART_BYTES + 777)
    upload = await store.start_upload("resumable/one", len(data))
    assert upload.part_count == 3 and upload.part_bytes(3) == 777
    part = {n: data[(n - 1) * MIN_PART_BYTES: n * MIN_PART_BYTES] for n in (1, 2, 3)}
    await store.put_part(upload, 2, pieces(part[2]))
    with pytest.raises(ConnectionResetError):
        await store.put_part(upload, 1, interrupted(part[1], 1_000_000))
    # The session survives the process: only its token is kept between requests.
    upload = PartUpload.from_token(upload.token())
    assert await store.uploaded_parts(upload) == [2]
    with pytest.raises(MissingParts) as missing:
        await store.finish_upload(upload)
    assert missing.value.extra["missing_parts"] == [1, 3]
    with pytest.raises(PartSizeMismatch):
        await store.put_part(upload, 3, pieces(part[3] + b"x"))
    with pytest.raises(PartSizeMismatch):
        await store.put_part(upload, 1, pieces(part[1][:-1]))
    await store.put_part(upload, 3, pieces(part[3]))
    await store.put_part(upload, 1, pieces(part[1]))
    await store.put_part(upload, 1, pieces(part[1]))  # sent twice: replaced, with fresh nonces
    assert await store.uploaded_parts(upload) == [1, 2, 3]
    await store.finish_upload(upload)
    assert (await read_all(store, "resumable/one"))[0] == data


async def test_an_aborted_upload_leaves_nothing(store: ObjectStore) -> None:
    upload = await store.start_upload("resumable/aborted", MIN_PART_BYTES + 10)
    await store.put_part(upload, 2, pieces(b"0123456789"))
    await store.abort_upload(upload)
    await store.abort_upload(upload)  # again: nothing to do
    with pytest.raises(ObjectNotFound):
        await store.open("resumable/aborted")
    assert [info.key async for info in store.listing("resumable/aborted")] == []


async def test_a_failed_stream_stores_nothing(store: ObjectStore) -> None:
    for size in (1000, 2 * MIN_PART_BYTES):  # one PUT, and a multipart upload
        with pytest.raises(ConnectionResetError):
            await store.put(f"failed/{size}", interrupted(os.urandom(size + 10), size))
        with pytest.raises(ObjectNotFound):
            await store.open(f"failed/{size}")


async def test_listing_and_delete(store: ObjectStore) -> None:
    for name in ("b", "a", "c"):
        await store.put(f"list/{name}", pieces(b"x"))
    await store.put("other/d", pieces(b"x"))
    assert [i.key async for i in store.listing("list/")] == ["list/a", "list/b", "list/c"]
    assert [i.key async for i in store.listing("list/", after="list/a")] == ["list/b", "list/c"]
    await store.delete("list/b")
    await store.delete("list/b")
    assert [i.key async for i in store.listing("list/")] == ["list/a", "list/c"]
    with pytest.raises(ObjectNotFound):
        await store.open("list/b")


async def test_a_store_that_does_not_answer_is_a_fast_503(object_store_access: ObjectStoreAccess) -> None:
    nowhere = ObjectStoreAccess(f"http://127.0.0.1:{free_port()}", object_store_access.access_key,
                                object_store_access.secret_key, object_store_access.master_keys_json)
    down = ObjectStore(settings_for(nowhere, "down"))
    await down.start()
    try:
        for call in (down.check(), down.put("k", pieces(b"x")), down.open("k")):
            started = time.monotonic()
            with pytest.raises(ObjectStoreUnavailable) as problem:
                await call
            assert time.monotonic() - started < 5
            assert problem.value.status == 503 and problem.value.headers["Retry-After"]
    finally:
        await down.close()
    unconfigured = ObjectStore(ObjectStoreSettings())
    await unconfigured.start()
    with pytest.raises(ObjectStoreUnavailable):
        await unconfigured.check()


async def test_wrong_credentials_are_refused_by_the_store(object_store_access: ObjectStoreAccess) -> None:
    wrong = ObjectStore(ObjectStoreSettings(object_store_url=object_store_access.url, object_store_access_key="x",
                                            object_store_secret_key="y",
                                            master_keys_json=object_store_access.master_keys_json))
    await wrong.start()
    try:
        with pytest.raises(ObjectStoreUnavailable):
            await wrong.check()
    finally:
        await wrong.close()


def test_master_key_sets_are_validated() -> None:
    keys = MasterKeys.parse(new_master_keys_json("a"))
    assert keys.active == "a" and len(keys.key("a")) == 32
    assert keys.derive("links")[1] != keys.derive("other")[1]
    assert keys.derive("links") == keys.derive("links", "a")
    for bad in ("", "{}", '{"active": "a", "keys": {}}', '{"active": "a", "keys": {"a": "c2hvcnQ="}}',
                '{"active": "a b", "keys": {"a b": "' + "A" * 44 + '"}}', '{"active": "a", "keys": {"a": "%%%"}}'):
        with pytest.raises(ValueError):
            MasterKeys.parse(bad)
