"""The object store: files in any S3-compatible store, encrypted by the application, streamed both ways.

Files never go into PostgreSQL rows or onto a service's disk: they go to an S3 API (SeaweedFS by default, started by
`python3 manage.py run` and by the tests; MinIO, Ceph or a cloud store in production), through aiobotocore. Every
object is encrypted here before it leaves the process, so a leaked bucket reveals nothing.

Interface (stable: the cases service's attachments and generated documents both use it)::

    store = ObjectStore(settings)            # settings: a service's settings with `ObjectStoreSettings` mixed in
    await store.start(); ...; await store.close()

    stored = await store.put(key, chunks)    # chunks: AsyncIterable[bytes] -> StoredObject(key, size, sha256, key_id)
    reader = await store.open(key)           # 404 ObjectNotFound / 503 ObjectStoreUnavailable raised here, before
    async for chunk in reader: ...           # any byte is sent on; each plaintext chunk is authenticated first
    await reader.close()
    await store.delete(key)                  # idempotent
    await store.check()                      # 503 ObjectStoreUnavailable unless the store answers now

    async for info in store.listing(prefix, after=key): ...   # ObjectInfo(key, size, modified), in key order
    await store.rewrap(key)                  # the data key wrapped again with the active master key; its key id

    # Resumable uploads in parts (S3 multipart underneath): a phone continues after a break.
    upload = await store.start_upload(key, size)    # PartUpload; keep `upload.token()`, `PartUpload.from_token(...)`
    await store.put_part(upload, number, chunks)    # exactly `upload.part_bytes(number)` bytes, any order, again
    await store.uploaded_parts(upload)               # the part numbers stored whole
    await store.finish_upload(upload)                # the object exists under `upload.key`, or MissingParts (409)
    await store.abort_upload(upload)

Errors are `AppError`s (problem+json through the services' one handler): `ObjectStoreUnavailable` (503 with
Retry-After, within about a second when the store is down), `ObjectNotFound` (404), `ObjectCorrupted` (500: an
object failed authentication), `PartSizeMismatch` (400) and `MissingParts` (409).

Encryption (envelope, docs/operations.md "Encryption at rest"): each object gets a fresh random 256-bit data key.
The data key is wrapped (AES-256-GCM) by the active master key from `<PREFIX>MASTER_KEYS_JSON` and stored, with that
key's id, in the object's header. The plaintext is encrypted in chunks of 64 KiB, each with its own random 96-bit
nonce and its own tag, and with its index and a last-chunk flag in the associated data: a reader decrypts as it
streams, never yields a byte that failed authentication, and notices chunks that were reordered, dropped or cut
off. Layout::

    header: b"CPE1" | chunk size (u32) | key id length (u8) | key id | nonce (12) | wrapped data key (32 + 16 tag)
    chunk:  nonce (12) | ciphertext | tag (16)            associated data: b"CPE1" | chunk size | index (u64) | last

Rotation: add a key to `<PREFIX>MASTER_KEYS_JSON` and make it active; new objects use it at once, old ones stay
readable with their own key id; `rewrap` re-wraps an object's data key (the chunks are not touched) so the old key can
be retired. The SHA-256 of the plaintext is computed while storing (`StoredObject.sha256`).

Memory: nothing holds a whole file. Uploads of unknown length go to S3 in parts of `<PREFIX>OBJECT_STORE_PART_BYTES`
(5 MiB, the S3 minimum); the part buffers of a process are bounded by `<PREFIX>OBJECT_STORE_BUFFER_BYTES`, and puts
beyond that wait (their request bodies are not read meanwhile). Reads stream chunk by chunk.

S3 presigned URLs are of no use with application encryption (they would hand out ciphertext): services issue their
own short-lived signed links to routes that decrypt, keyed by `MasterKeys.derive`.
"""

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, Field

from services.common.errors import AppError, NotFound, ServiceUnavailable
from services.common.logging import get_logger

logger = get_logger("storage")

MAGIC = b"CPE1"
CHUNK_BYTES = 64 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES
DATA_KEY_BYTES = 32
WRAPPED_KEY_BYTES = NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part but the last
MAX_HEADER_BYTES = 4 + 4 + 1 + 64 + WRAPPED_KEY_BYTES
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# ---------------------------------------------------------------------------------------------------- errors


class ObjectStoreUnavailable(ServiceUnavailable):
    title, type_suffix = "Object store unavailable", "object-store-unavailable"

    def __init__(self, detail: str = "the file store is unavailable; retry shortly") -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class ObjectNotFound(NotFound):
    title, type_suffix = "File not found", "file-not-found"


class ObjectCorrupted(AppError):
    status, title, type_suffix = 500, "Stored file failed its integrity check", "file-corrupted"


class PartSizeMismatch(AppError):
    status, title, type_suffix = 400, "Part size mismatch", "part-size-mismatch"


class MissingParts(AppError):
    status, title, type_suffix = 409, "Upload incomplete", "upload-incomplete"


# ---------------------------------------------------------------------------------------------------- settings


class ObjectStoreSettings(BaseModel):
    """Mixed into a service's settings class: `<PREFIX>OBJECT_STORE_*` and `<PREFIX>MASTER_KEYS_JSON`."""

    object_store_url: str = Field("", description="S3 endpoint, e.g. http://127.0.0.1:8333; empty: no file store")
    object_store_bucket: str = Field("child-protection", min_length=3, max_length=63, pattern=r"^[a-z0-9.-]+$")
    object_store_region: str = "us-east-1"
    object_store_access_key: str = ""
    object_store_secret_key: str = ""
    object_store_create_bucket: bool = Field(True, description="Create the bucket at first use when it is missing")
    # A store that is down refuses connections at once; this bounds only a store that does not answer at all.
    object_store_connect_timeout_seconds: float = Field(3.0, gt=0)
    object_store_timeout_seconds: float = Field(30.0, gt=0)
    object_store_part_bytes: int = Field(MIN_PART_BYTES, ge=MIN_PART_BYTES, le=512 * 1024 * 1024)
    object_store_buffer_bytes: int = Field(16 * 1024 * 1024, ge=MIN_PART_BYTES)
    # {"active": "<key id>", "keys": {"<key id>": "<base64 of 32 random bytes>", ...}}
    master_keys_json: str = ""

    def object_store_required(self) -> dict[str, str]:
        """What a production service must be given (its settings refuse to start without them)."""
        return {"object_store_url": self.object_store_url, "object_store_access_key": self.object_store_access_key,
                "object_store_secret_key": self.object_store_secret_key, "master_keys_json": self.master_keys_json}


def new_master_keys_json(key_id: str = "k1") -> str:
    """A fresh key set with one active key, for the run command and the tests (production makes its own)."""
    return json.dumps({"active": key_id, "keys": {key_id: base64.b64encode(os.urandom(32)).decode()}})


class MasterKeys:
    """The master keys: the active one wraps new data keys; every listed one unwraps."""

    def __init__(self, keys: dict[str, bytes], active: str):
        if active not in keys:
            raise ValueError("the active master key is not among the keys")
        self.keys, self.active = keys, active

    @classmethod
    def parse(cls, text: str) -> "MasterKeys":
        try:
            data = json.loads(text)
            keys = {str(kid): base64.b64decode(value, validate=True) for kid, value in data["keys"].items()}
            active = str(data["active"])
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ValueError("MASTER_KEYS_JSON must be {\"active\": id, \"keys\": {id: base64 of 32 bytes}}") from exc
        for kid, key in keys.items():
            if not KEY_ID.match(kid) or len(key) != 32:
                raise ValueError("each master key needs an id of [A-Za-z0-9._-]{1,64} and exactly 32 bytes")
        return cls(keys, active)

    def key(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise ObjectCorrupted(f"the master key {kid!r} is not configured") from None

    def derive(self, purpose: str, kid: str | None = None) -> tuple[str, bytes]:
        """A 32-byte key for another use (signing download links), derived from a master key (HMAC-SHA256 as the
        HKDF-Expand step of RFC 5869 with one block). Returns (key id, key)."""
        kid = kid or self.active
        derived = hmac.new(self.key(kid), b"child-protection " + purpose.encode() + b"\x01", hashlib.sha256).digest()
        return kid, derived


# ---------------------------------------------------------------------------------------------------- format


def _chunk_aad(chunk_bytes: int, index: int, last: bool) -> bytes:
    return MAGIC + struct.pack(">IQB", chunk_bytes, index, last)


def _wrap(keys: MasterKeys, data_key: bytes, chunk_bytes: int) -> bytes:
    kid = keys.active.encode()
    nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(keys.key(keys.active)).encrypt(nonce, data_key, MAGIC + b"key" + kid)
    return MAGIC + struct.pack(">IB", chunk_bytes, len(kid)) + kid + nonce + wrapped


@dataclass(frozen=True)
class Header:
    chunk_bytes: int
    key_id: str
    data_key: bytes
    length: int


def _parse_header(keys: MasterKeys, data: bytes) -> Header | None:
    """The header at the start of `data`, or None when `data` is too short to hold it."""
    if len(data) < 9:
        return None
    if data[:4] != MAGIC:
        raise ObjectCorrupted("not an object this service encrypted")
    chunk_bytes, kid_length = struct.unpack(">IB", data[4:9])
    length = 9 + kid_length + WRAPPED_KEY_BYTES
    if len(data) < length:
        return None
    kid = data[9:9 + kid_length]
    nonce, wrapped = data[9 + kid_length:9 + kid_length + NONCE_BYTES], data[9 + kid_length + NONCE_BYTES:length]
    try:
        key_id = kid.decode("ascii")
        data_key = AESGCM(keys.key(key_id)).decrypt(nonce, wrapped, MAGIC + b"key" + kid)
    except (InvalidTag, UnicodeDecodeError) as exc:
        raise ObjectCorrupted("the object's data key failed authentication") from exc
    if not 0 < chunk_bytes <= 16 * 1024 * 1024:
        raise ObjectCorrupted("the object's chunk size is not valid")
    return Header(chunk_bytes, key_id, data_key, length)


class _Encryptor:
    """Plaintext in pieces of any size -> encrypted chunks. A chunk is sealed once the next byte is known (or the
    end), so the last one carries the last flag."""

    def __init__(self, data_key: bytes, chunk_bytes: int = CHUNK_BYTES, first_index: int = 0):
        self.aead, self.chunk_bytes, self.index = AESGCM(data_key), chunk_bytes, first_index
        self.pending = bytearray()

    def _seal(self, plain: bytes, last: bool) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self.aead.encrypt(nonce, plain, _chunk_aad(self.chunk_bytes, self.index, last))
        self.index += 1
        return sealed

    def feed(self, piece: bytes) -> Iterator[bytes]:
        self.pending += piece
        while len(self.pending) > self.chunk_bytes:
            plain = bytes(self.pending[:self.chunk_bytes])
            del self.pending[:self.chunk_bytes]
            yield self._seal(plain, last=False)

    def finish(self, last: bool = True) -> Iterator[bytes]:
        """The remaining chunk; `last=False` ends a part in the middle of an object (it must end on a chunk)."""
        if self.pending or last:
            plain = bytes(self.pending)
            self.pending.clear()
            yield self._seal(plain, last=last)


class _Decryptor:
    """Encrypted bytes in pieces of any size -> authenticated plaintext chunks."""

    def __init__(self, keys: MasterKeys):
        self.keys = keys
        self.header: Header | None = None
        self.aead: AESGCM | None = None
        self.buffer = bytearray()
        self.index = 0

    def _open(self, sealed: bytes, last: bool) -> bytes:
        assert self.header is not None and self.aead is not None
        if len(sealed) < CHUNK_OVERHEAD:
            raise ObjectCorrupted("the object is cut off")
        try:
            plain = self.aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                      _chunk_aad(self.header.chunk_bytes, self.index, last))
        except InvalidTag as exc:
            raise ObjectCorrupted("a chunk of the object failed authentication") from exc
        self.index += 1
        return plain

    def feed(self, piece: bytes) -> Iterator[bytes]:
        self.buffer += piece
        if self.header is None:
            self.header = _parse_header(self.keys, bytes(self.buffer[:MAX_HEADER_BYTES]))
            if self.header is None:
                return
            self.aead = AESGCM(self.header.data_key)
            del self.buffer[:self.header.length]
        sealed_bytes = self.header.chunk_bytes + CHUNK_OVERHEAD
        while len(self.buffer) > sealed_bytes:
            sealed = bytes(self.buffer[:sealed_bytes])
            del self.buffer[:sealed_bytes]
            yield self._open(sealed, last=False)

    def finish(self) -> Iterator[bytes]:
        if self.header is None:
            raise ObjectCorrupted("the object is cut off")
        sealed = bytes(self.buffer)
        self.buffer.clear()
        yield self._open(sealed, last=True)


def encrypted_size(plain_bytes: int, chunk_bytes: int = CHUNK_BYTES, *, last: bool = True) -> int:
    """Stored bytes of `plain_bytes` starting on a chunk boundary (without the header)."""
    chunks = -(-plain_bytes // chunk_bytes) if plain_bytes else 0
    if last:
        chunks = max(chunks, 1)
    return plain_bytes + chunks * CHUNK_OVERHEAD


# ---------------------------------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int  # plaintext bytes
    sha256: str  # of the plaintext, hex
    key_id: str  # the master key that wraps its data key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int  # stored (encrypted) bytes
    modified: datetime


@dataclass(frozen=True)
class PartUpload:
    """A resumable upload of `size` bytes to `key` in parts of `part_size` plaintext bytes (the last one shorter)."""

    key: str
    upload_id: str
    header: bytes
    size: int
    part_size: int

    @property
    def part_count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def part_bytes(self, number: int) -> int:
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part numbers run from 1 to {self.part_count}")
        return self.part_size if number < self.part_count else self.size - self.part_size * (self.part_count - 1)

    def token(self) -> str:
        return json.dumps({"key": self.key, "upload_id": self.upload_id, "size": self.size,
                           "part_size": self.part_size, "header": base64.b64encode(self.header).decode()})

    @classmethod
    def from_token(cls, token: str) -> "PartUpload":
        data = json.loads(token)
        return cls(key=data["key"], upload_id=data["upload_id"], header=base64.b64decode(data["header"]),
                   size=int(data["size"]), part_size=int(data["part_size"]))


class ObjectReader:
    """The plaintext of one object, chunk by chunk; close it (or read it to the end)."""

    def __init__(self, body: Any, decryptor: _Decryptor, first: bytes, store: "ObjectStore"):
        self.body, self.decryptor, self.first, self.store = body, decryptor, first, store
        assert decryptor.header is not None
        self.key_id = decryptor.header.key_id

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            for plain in self.decryptor.feed(self.first):
                yield plain
            self.first = b""
            while True:
                async with self.store.translated():
                    piece = await self.body.read(CHUNK_BYTES + CHUNK_OVERHEAD)
                if not piece:
                    break
                for plain in self.decryptor.feed(piece):
                    yield plain
            for plain in self.decryptor.finish():
                yield plain
        finally:
            await self.close()

    async def close(self) -> None:
        self.body.close()


class ObjectStore:
    def __init__(self, settings: ObjectStoreSettings, *, chunk_bytes: int = CHUNK_BYTES):
        self.settings = settings
        self.chunk_bytes = chunk_bytes
        self.bucket = settings.object_store_bucket
        self.part_bytes = settings.object_store_part_bytes
        self._slots = asyncio.Semaphore(max(1, settings.object_store_buffer_bytes // self.part_bytes))
        self._exit: AsyncExitStack | None = None
        self._client: Any = None
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()
        self._checked_at = -1e9
        self._checking: asyncio.Future[None] | None = None

    @cached_property
    def keys(self) -> MasterKeys:
        return MasterKeys.parse(self.settings.master_keys_json)

    @property
    def configured(self) -> bool:
        return bool(self.settings.object_store_url and self.settings.master_keys_json)

    async def start(self) -> None:
        """Make the client (no call to the store yet: a store that is down must not stop the service)."""
        if not self.configured:
            logger.warning("object store not configured: file routes answer 503")
            return
        self.keys  # noqa: B018 - a malformed key set stops the start, not the first upload
        s = self.settings
        config = AioConfig(
            s3={"addressing_style": "path"}, signature_version="s3v4",
            connect_timeout=s.object_store_connect_timeout_seconds, read_timeout=s.object_store_timeout_seconds,
            # No retry inside a request: a store that is down must answer 503 at once; the client retries.
            retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=100,
            # S3-compatible stores differ in their support of the newer flexible checksums; the content is
            # authenticated by our own encryption anyway.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        self._exit = AsyncExitStack()
        self._client = await self._exit.enter_async_context(get_session().create_client(
            "s3", endpoint_url=s.object_store_url, region_name=s.object_store_region,
            aws_access_key_id=s.object_store_access_key or None,
            aws_secret_access_key=s.object_store_secret_key or None, config=config))

    async def close(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
            self._exit, self._client = None, None

    @asynccontextmanager
    async def translated(self) -> AsyncIterator[None]:
        """Store failures as problems: missing -> 404, anything else the store or the network does -> 503."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound", "NoSuchUpload"):
                raise ObjectNotFound("no such file") from exc
            logger.warning("object store error", extra={"error_type": code or type(exc).__name__})
            raise ObjectStoreUnavailable() from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("object store unavailable", extra={"error_type": type(exc).__name__})
            raise ObjectStoreUnavailable() from exc

    async def _ready(self) -> Any:
        """The client, once the bucket is known to exist (created at first use when allowed)."""
        if not self.configured or self._client is None:
            raise ObjectStoreUnavailable("the file store is not configured")
        if self._bucket_ready:
            return self._client
        async with self._bucket_lock, self.translated():
            if not self._bucket_ready:
                try:
                    await self._client.head_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    missing = str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchBucket", "NotFound")
                    if not (missing and self.settings.object_store_create_bucket):
                        raise
                    await self._client.create_bucket(Bucket=self.bucket)
                self._bucket_ready = True
        return self._client

    async def check(self) -> None:
        """Raise ObjectStoreUnavailable unless the store answered within the last second. Concurrent callers share
        one call: fifty uploads starting at once must not open fifty connections just to ask."""
        client = await self._ready()
        if time.monotonic() - self._checked_at < 1.0:
            return
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._head_bucket(client))
        await asyncio.shield(self._checking)

    async def _head_bucket(self, client: Any) -> None:
        async with self.translated():
            await client.head_bucket(Bucket=self.bucket)
        self._checked_at = time.monotonic()

    # ------------------------------------------------------------------------------------------ whole objects

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> StoredObject:
        """Encrypt and store the stream under `key`; nothing is left behind if the stream or the store fails."""
        client = await self._ready()
        data_key = os.urandom(DATA_KEY_BYTES)
        encryptor = _Encryptor(data_key, self.chunk_bytes)
        digest, size = hashlib.sha256(), 0
        async with self._slots:
            writer = _PartWriter(self, client, key)
            try:
                await writer.write(_wrap(self.keys, data_key, self.chunk_bytes))
                async for piece in chunks:
                    digest.update(piece)
                    size += len(piece)
                    for sealed in encryptor.feed(piece):
                        await writer.write(sealed)
                for sealed in encryptor.finish():
                    await writer.write(sealed)
                await writer.close()
            except BaseException:
                await writer.abort()
                raise
        return StoredObject(key=key, size=size, sha256=digest.hexdigest(), key_id=self.keys.active)

    async def open(self, key: str) -> ObjectReader:
        """Start reading `key`: the header is read and its data key unwrapped before this returns."""
        client = await self._ready()
        async with self.translated():
            response = await client.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"]
        decryptor = _Decryptor(self.keys)
        try:
            decryptor.header, rest = await self._read_header(body)
        except BaseException:
            body.close()
            raise
        decryptor.aead = AESGCM(decryptor.header.data_key)
        return ObjectReader(body, decryptor, rest, self)

    async def _read_header(self, body: Any) -> tuple[Header, bytes]:
        """The object's header, and the bytes read past it."""
        first = b""
        while True:
            async with self.translated():
                piece = await body.read(MAX_HEADER_BYTES)
            if not piece:
                raise ObjectCorrupted("the object is cut off")
            first += piece
            header = _parse_header(self.keys, first)
            if header is not None:
                return header, first[header.length:]

    async def delete(self, key: str) -> None:
        client = await self._ready()
        async with self.translated():
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def listing(self, prefix: str, *, after: str = "") -> AsyncIterator[ObjectInfo]:
        client = await self._ready()
        paginator = client.get_paginator("list_objects_v2")
        async with self.translated():
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, StartAfter=after):
                for item in page.get("Contents", []):
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]), modified=item["LastModified"])

    async def rewrap(self, key: str) -> str:
        """Wrap the data key of `key` with the active master key (a stream copy: the chunks are unchanged, nothing
        is decrypted but the data key). Returns the key id the object has now."""
        client = await self._ready()
        async with self.translated():
            response = await client.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"]
        try:
            header, rest = await self._read_header(body)
            if header.key_id == self.keys.active:
                return header.key_id
            async with self._slots:
                writer = _PartWriter(self, client, key)
                try:
                    await writer.write(_wrap(self.keys, header.data_key, header.chunk_bytes))
                    await writer.write(rest)
                    while True:
                        async with self.translated():
                            piece = await body.read(self.part_bytes)
                        if not piece:
                            break
                        await writer.write(piece)
                    await writer.close()
                except BaseException:
                    await writer.abort()
                    raise
            return self.keys.active
        finally:
            body.close()

    async def key_id(self, key: str) -> str:
        """The id of the master key that wraps the object's data key."""
        client = await self._ready()
        async with self.translated():
            response = await client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{MAX_HEADER_BYTES - 1}")
            async with response["Body"] as body:
                head = await body.read()
        header = _parse_header(self.keys, head)
        if header is None:
            raise ObjectCorrupted("the object is cut off")
        return header.key_id

    # ------------------------------------------------------------------------------------------ resumable uploads

    async def start_upload(self, key: str, size: int, part_size: int | None = None) -> PartUpload:
        part_size = part_size or self.part_bytes
        if part_size < MIN_PART_BYTES or part_size % self.chunk_bytes:
            raise ValueError("parts hold at least 5 MiB and a whole number of chunks")
        client = await self._ready()
        data_key = os.urandom(DATA_KEY_BYTES)
        async with self.translated():
            created = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
        return PartUpload(key=key, upload_id=created["UploadId"], header=_wrap(self.keys, data_key, self.chunk_bytes),
                          size=size, part_size=part_size)

    def _stored_part_bytes(self, upload: PartUpload, number: int) -> int:
        header = len(upload.header) if number == 1 else 0
        return header + encrypted_size(upload.part_bytes(number), self.chunk_bytes,
                                       last=number == upload.part_count)

    async def put_part(self, upload: PartUpload, number: int, chunks: AsyncIterable[bytes]) -> None:
        """Store part `number`, which must be exactly `upload.part_bytes(number)` bytes. Sending a part again
        replaces it (with fresh nonces)."""
        expected = upload.part_bytes(number)
        header = _parse_header(self.keys, upload.header)
        assert header is not None
        encryptor = _Encryptor(header.data_key, header.chunk_bytes,
                               first_index=(number - 1) * (upload.part_size // header.chunk_bytes))
        client = await self._ready()
        async with self._slots:
            sealed = bytearray(upload.header if number == 1 else b"")
            received = 0
            async for piece in chunks:
                received += len(piece)
                if received > expected:
                    raise PartSizeMismatch(f"part {number} holds {expected} bytes")
                for block in encryptor.feed(piece):
                    sealed += block
            if received != expected:
                raise PartSizeMismatch(f"part {number} holds {expected} bytes; {received} arrived")
            for block in encryptor.finish(last=number == upload.part_count):
                sealed += block
            async with self.translated():
                await client.upload_part(Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id,
                                         PartNumber=number, Body=sealed)

    async def _parts(self, upload: PartUpload) -> dict[int, dict[str, Any]]:
        client = await self._ready()
        parts: dict[int, dict[str, Any]] = {}
        paginator = client.get_paginator("list_parts")
        async with self.translated():
            async for page in paginator.paginate(Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id):
                for part in page.get("Parts", []):
                    parts[int(part["PartNumber"])] = part
        return parts

    async def uploaded_parts(self, upload: PartUpload) -> list[int]:
        parts = await self._parts(upload)
        return sorted(n for n, part in parts.items()
                      if n <= upload.part_count and int(part["Size"]) == self._stored_part_bytes(upload, n))

    async def finish_upload(self, upload: PartUpload) -> None:
        parts = await self._parts(upload)
        whole = {n for n, part in parts.items()
                 if n <= upload.part_count and int(part["Size"]) == self._stored_part_bytes(upload, n)}
        missing = [n for n in range(1, upload.part_count + 1) if n not in whole]
        if missing:
            raise MissingParts("some parts have not arrived", missing_parts=missing)
        client = await self._ready()
        async with self.translated():
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]["ETag"]}
                                           for n in range(1, upload.part_count + 1)]})

    async def abort_upload(self, upload: PartUpload) -> None:
        client = await self._ready()
        try:
            async with self.translated():
                await client.abort_multipart_upload(Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id)
        except ObjectNotFound:
            pass  # already finished or aborted


class _PartWriter:
    """Encrypted bytes -> one PUT when they fit in a part, else a multipart upload of parts of `part_bytes`."""

    def __init__(self, store: ObjectStore, client: Any, key: str):
        self.store, self.client, self.key = store, client, key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    async def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.store.part_bytes:
            await self._flush_part()

    async def _flush_part(self) -> None:
        store = self.store
        async with store.translated():
            if self.upload_id is None:
                created = await self.client.create_multipart_upload(Bucket=store.bucket, Key=self.key)
                self.upload_id = created["UploadId"]
            number = len(self.parts) + 1
            # The buffer itself is the body (no copy of a part in memory); a new one takes the next bytes.
            body, self.buffer = self.buffer, bytearray()
            part = await self.client.upload_part(Bucket=store.bucket, Key=self.key, UploadId=self.upload_id,
                                                 PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": part["ETag"]})

    async def close(self) -> None:
        store = self.store
        if self.upload_id is None:
            body, self.buffer = self.buffer, bytearray()
            async with store.translated():
                await self.client.put_object(Bucket=store.bucket, Key=self.key, Body=body)
            return
        if self.buffer:
            await self._flush_part()
        async with store.translated():
            await self.client.complete_multipart_upload(Bucket=store.bucket, Key=self.key, UploadId=self.upload_id,
                                                        MultipartUpload={"Parts": self.parts})

    async def abort(self) -> None:
        self.buffer.clear()
        if self.upload_id is None:
            return
        try:
            async with self.store.translated():
                await self.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key,
                                                         UploadId=self.upload_id)
        except (ObjectStoreUnavailable, ObjectNotFound):
            logger.warning("multipart upload not aborted; the store expires it")
