"""Write a new Alembic revision for one service from the difference between its models and its migrations.

    python -m scripts.new_migration registry "add guardians"
"""

import sys
import uuid
from pathlib import Path

from alembic import command

from scripts.stack import ROOT, SERVICES, choose_postgres, create_databases, drop_databases, migrate
from services.common.migrate import alembic_config


def main(service_name: str, message: str) -> None:
    service = next(s for s in SERVICES if s.name == service_name)
    pg = choose_postgres(ROOT / "var" / "pg-dev", prefer_local=True)
    database = f"migration_{service_name}_{uuid.uuid4().hex[:8]}"
    create_databases(pg, [database])
    try:
        url = pg.url(database)
        migrate(url, service.migrations)
        config = alembic_config(Path(service.migrations), url)
        command.revision(config, message=message, autogenerate=True)
    finally:
        drop_databases(pg, [database])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
