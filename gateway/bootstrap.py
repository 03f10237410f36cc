"""Create the first administrator of a new installation (demo users never exist in production):

    GATEWAY_DATABASE_URL=... python -m gateway.bootstrap --username admin.nguyen --display-name "Nguyen Van A"

The password is read from the terminal (or from standard input when it is not a terminal), never from the
command line, where it would be kept in the shell history and visible in the process list.
"""

import argparse
import asyncio
import getpass
import sys

from sqlalchemy import select

from gateway.models import AdminAuditEntry, User
from gateway.service import hash_password
from gateway.settings import GatewaySettings
from services.common.db import Database
from services.common.permissions import ROLE_AGENCY, Role


async def create_admin(settings: GatewaySettings, username: str, display_name: str, password: str) -> bool:
    database = Database(settings.database_url, pool_size=1)
    try:
        async with database.sessionmaker() as session, session.begin():
            if await session.scalar(select(User.id).where(User.username == username)):
                return False
            user = User(username=username, display_name=display_name, agency=ROLE_AGENCY[Role.ADMIN].value,
                        role=Role.ADMIN.value, jurisdiction_level="national",
                        password_hash=await hash_password(password))
            session.add(user)
            await session.flush()
            session.add(AdminAuditEntry(actor_id="bootstrap", action="user.create", target_id=str(user.id),
                                        detail={"role": user.role, "jurisdiction": {"level": "national"}}))
        return True
    finally:
        await database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--username", required=True)
    parser.add_argument("--display-name", required=True)
    args = parser.parse_args()
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("the password must have at least 12 characters", file=sys.stderr)
        return 2
    created = asyncio.run(create_admin(GatewaySettings(), args.username.lower(), args.display_name, password))
    print("administrator created" if created else "that username exists already; nothing changed")
    return 0 if created else 1


if __name__ == "__main__":
    sys.exit(main())
