"""The one-shot migration step: `python -m deploy.migrate [service ...]` upgrades each service's database to the
head of its Alembic history (all four when none is named). With `--await-head` it changes nothing and waits until
the databases are at head: the init container of each Kubernetes Deployment, so that pods of a new release start
only once the migration Job has run.

Each database URL comes from the variable the service itself reads (`GATEWAY_DATABASE_URL`, `REGISTRY_DATABASE_URL`,
...) and is required: a deployment never falls back to a default. The step waits for the database server to accept
connections (it may still be starting), upgrades one service at a time, and prints one line per service without the
URL (it carries a password). Run it once per release, before the new version of the services starts, as compose and
the Kubernetes Job do; two copies at once are not supported.
"""

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Mapping

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.services import SERVICES, Service
from services.common.migrate import current_revision, head_revision, upgrade

# The server answers but cannot take us yet: worth waiting for, unlike a wrong password or a missing database.
_NOT_YET = (asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


def database_url(service: Service, environ: Mapping[str, str]) -> str | None:
    return environ.get(f"{service.env_prefix}DATABASE_URL") or None


def _retryable(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return True
    return isinstance(error, DBAPIError) and isinstance(error.orig.__cause__ if error.orig else None, _NOT_YET)


async def wait_for_database(url: str, wait_seconds: float) -> None:
    """Until the server accepts a connection; after `wait_seconds` the last error is raised."""
    deadline = time.monotonic() + wait_seconds
    engine = create_async_engine(url)
    try:
        while True:
            try:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                return
            except Exception as error:
                if not _retryable(error) or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(1.0)
    finally:
        await engine.dispose()


async def database_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


def migrate(service: Service, url: str, *, wait: float) -> str | None:
    """Upgrade one service's database to head; returns the revision it is at afterwards."""
    migrations = service.migrations_dir()
    head = head_revision(migrations)
    asyncio.run(wait_for_database(url, wait))
    before = asyncio.run(database_revision(url))
    upgrade(migrations, url)
    after = asyncio.run(database_revision(url))
    if after != head:
        raise RuntimeError(f"at {after} after the upgrade, head is {head}")
    print(f"{service.name}: {before or 'empty'} -> {after}", flush=True)
    return after


async def await_head(service: Service, url: str, wait_seconds: float) -> str | None:
    """Until the database is at this code's head; raises TimeoutError after `wait_seconds`."""
    head = head_revision(service.migrations_dir())
    deadline = time.monotonic() + wait_seconds
    while True:
        remaining = deadline - time.monotonic()
        await wait_for_database(url, max(remaining, 0.0))
        current = await database_revision(url)
        if current == head:
            print(f"{service.name}: at {head}", flush=True)
            return current
        if time.monotonic() >= deadline:
            raise TimeoutError(f"at {current or 'empty'}, waiting for {head}")
        await asyncio.sleep(2.0)


def redact(message: str, url: str) -> str:
    """The message with the URL's password blanked out (driver and parser errors can quote the URL)."""
    message = message.replace(url, "<database url>")
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return message
    return message.replace(str(password), "***") if password else message


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", metavar="service", help=f"any of {', '.join(SERVICES)}; default all")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for each database server")
    parser.add_argument("--await-head", action="store_true", help="change nothing; wait until at head")
    args = parser.parse_args(argv)
    unknown = [name for name in args.services if name not in SERVICES]
    if unknown:
        parser.error(f"unknown service {', '.join(unknown)} (one of {', '.join(SERVICES)})")
    environ = os.environ if environ is None else environ
    chosen = [SERVICES[name] for name in (args.services or SERVICES)]
    missing = [f"{s.env_prefix}DATABASE_URL" for s in chosen if database_url(s, environ) is None]
    if missing:
        print(f"not set: {', '.join(missing)}", file=sys.stderr)
        return 2
    for service in chosen:
        url = database_url(service, environ)
        assert url is not None
        try:
            if args.await_head:
                asyncio.run(await_head(service, url, args.wait))
            else:
                migrate(service, url, wait=args.wait)
        except Exception as error:
            what = "not at head" if args.await_head else "migration failed"
            print(f"{service.name}: {what}: {type(error).__name__}: {redact(str(error), url)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
