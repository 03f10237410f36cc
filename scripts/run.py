"""Run the whole system on this machine: `python3 manage.py run`.

PostgreSQL: set `CP_DATABASE_URL` (a server URL without a database name, for example
`postgresql+asyncpg://postgres@127.0.0.1:5432`) to use a server; otherwise an embedded PostgreSQL is started with
its data under ./var/pg. Each service gets its own database. Ports: CP_GATEWAY_PORT, CP_REGISTRY_PORT, ...
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from scripts.stack import ROOT, SERVICES, Postgres, Stack, create_databases, embedded_postgres, new_client_secrets

VAR = ROOT / "var"


def load_secrets(path: Path) -> dict[str, str]:
    """Service-account secrets, generated at first run and kept in ./var (never committed)."""
    if path.exists():
        return json.loads(path.read_text())
    secrets = new_client_secrets()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(secrets))
    return secrets


def seed_demo_data(gateway: str) -> None:
    from scripts.demo import seed

    seed(gateway)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-demo", action="store_true", help="do not create demo users and data")
    args = parser.parse_args()

    server_url = os.environ.get("CP_DATABASE_URL")
    pg = (Postgres(base_url=server_url.rstrip("/")) if server_url
          else embedded_postgres(VAR / "pg", stop_on_exit=True))
    names = {s.name: f"cp_{s.name}" for s in SERVICES}
    print("preparing databases ...", flush=True)
    create_databases(pg, list(names.values()))
    ports = {s.name: int(os.environ.get(f"CP_{s.name.upper()}_PORT", s.default_port)) for s in SERVICES}
    stack = Stack(pg=pg, database_names=names, ports=ports, client_secrets=load_secrets(VAR / "secrets.json"),
                  seed_demo=not args.no_demo, log_dir=None, log_format="console")
    stack.migrate_all()

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start_all()
        gateway = stack.url("gateway")
        if not args.no_demo:
            seed_demo_data(gateway)
        print(f"""
Child protection backend is running.
  Gateway:   {gateway}
  API docs:  {gateway}/docs
  Services:  registry {stack.url('registry')}, cases {stack.url('cases')}, reporting {stack.url('reporting')}
  Demo token (users demo-<role>, password demo):
    curl -s -X POST {gateway}/auth/token -d grant_type=password -d username=demo-child_protection_officer \\
         -d password=demo
Press Ctrl-C to stop.
""", flush=True)
        while not stopping:
            for name, process in list(stack.processes.items()):
                if process.poll() is not None:
                    print(f"{name} stopped (exit {process.returncode}); restarting", file=sys.stderr, flush=True)
                    stack.start(next(s for s in SERVICES if s.name == name))
            time.sleep(0.5)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping ...", flush=True)
        stack.stop_all()
        if not server_url:
            print("stopping the embedded PostgreSQL ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
