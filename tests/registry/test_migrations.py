"""Records written before guardians had ids and before the one-record-per-person index migrate intact."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import orjson
from alembic import command

from services.common.migrate import alembic_config
from services.registry.app import MIGRATIONS

BEFORE = "562f9296957b"


async def test_existing_records_migrate(fresh_database: Callable[[str], str]) -> None:
    url = await asyncio.to_thread(fresh_database, "registry_migration")
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, url), BEFORE)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        insert = """INSERT INTO child (id, revision, full_name, name_search, sex, date_of_birth,
            date_of_birth_estimated, nationality, province_code, commune_code, birth_registered, guardians,
            guardian_phones, disability, special_groups, at_risk_flags, status, created_by, created_at, updated_by,
            updated_at) VALUES ($1, 1, $2, $3, 'female', '2016-01-01', false, 'VN', '01', '00070', false, $4, '{}',
            false, '[]', '{}', 'active', 'x', $5, 'x', $5)"""
        guardians = orjson.dumps([{"full_name": "Lê Thị Mẹ", "relationship": "mother"},
                                  {"full_name": "Lê Văn Cha", "relationship": "father"}]).decode()
        first, twin, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        january, february = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
        await connection.execute(insert, first, "Lê Thị Hoa", "le thi hoa", guardians, january)
        await connection.execute(insert, twin, "Lê Thị Hoa", "le thi hoa", "[]", february)
        await connection.execute(insert, other, "Lê Thị Ngọc Anh", "le thi ngoc anh", "[]", january)
    finally:
        await connection.close()
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, url), "head")
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = {r["id"]: r for r in await connection.fetch(
            "SELECT id, guardians, given_name_search, confirmed_distinct FROM child")}
    finally:
        await connection.close()
    migrated = orjson.loads(rows[first]["guardians"])
    assert [g["full_name"] for g in migrated] == ["Lê Thị Mẹ", "Lê Văn Cha"]  # order and content kept
    assert all(uuid.UUID(g["id"]) for g in migrated) and migrated[0]["id"] != migrated[1]["id"]
    assert rows[other]["given_name_search"] == "anh" and rows[first]["given_name_search"] == "hoa"
    # The twins coexist: the older stays under the unique index, the newer counts as confirmed distinct.
    assert (rows[first]["confirmed_distinct"], rows[twin]["confirmed_distinct"]) == (False, True)
