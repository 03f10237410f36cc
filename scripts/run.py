"""Run the whole system on this machine: `python3 manage.py run`.

PostgreSQL: set `CP_DATABASE_URL` (a server URL without a database name, for example
`postgresql+asyncpg://postgres@127.0.0.1:5432`) to use a server; otherwise an embedded PostgreSQL is started with
its data under ./var/pg. Each service gets its own database. Ports: CP_GATEWAY_PORT, CP_REGISTRY_PORT, ...
Files go to an embedded SeaweedFS with its data under ./var/seaweedfs (S3 on CP_OBJECT_STORE_PORT, default 8333);
its credentials and the master keys that encrypt the files are generated at first run into ./var/object-store.json.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx

from scripts.stack import (
    ROOT,
    SERVICES,
    Postgres,
    SeaweedFS,
    Stack,
    create_databases,
    embedded_postgres,
    new_client_secrets,
)
from services.common.storage import new_master_keys_json

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


def load_object_store_secrets(path: Path) -> dict[str, str]:
    """The embedded store's credentials and the master keys, generated at first run (never committed). Losing the
    master keys loses every stored file: back this file up with the data (docs/operations.md)."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {"access_key": secrets.token_hex(10), "secret_key": secrets.token_hex(20),
              "master_keys_json": new_master_keys_json(f"k{time.strftime('%Y%m%d')}")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


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
    stored = load_object_store_secrets(VAR / "object-store.json")
    seaweedfs = SeaweedFS(VAR / "seaweedfs", stored["access_key"], stored["secret_key"],
                          log_path=VAR / "seaweedfs.log")
    seaweedfs.ports["s3"] = int(os.environ.get("CP_OBJECT_STORE_PORT", 8333))
    stack = Stack(pg=pg, database_names=names, ports=ports, client_secrets=load_secrets(VAR / "secrets.json"),
                  seed_demo=not args.no_demo, log_dir=None, log_format="console",
                  object_store=seaweedfs.access(stored["master_keys_json"]))
    stack.migrate_all()

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print("starting the object store ...", flush=True)
        seaweedfs.start()
        seaweedfs.wait_ready()
        stack.start_all()
        gateway = stack.url("gateway")
        if not args.no_demo:
            seed_demo_data(gateway)
        print(f"""
Child protection backend is running.
  Gateway:   {gateway}
  API docs:  {gateway}/docs
  Services:  registry {stack.url('registry')}, cases {stack.url('cases')}, reporting {stack.url('reporting')}
  Files:     SeaweedFS S3 at {seaweedfs.url} (data under ./var/seaweedfs, encrypted by the services)
  Sign in as an app does (code + PKCE, second factor; users demo-<role>, password demo):
    .venv/bin/python -m scripts.sign_in --gateway {gateway}
  Demo token for scripts (the deprecated password grant, development only):
    curl -s -X POST {gateway}/auth/token -d grant_type=password -d username=demo-child_protection_officer \\
         -d password=demo
Press Ctrl-C to stop.
""", flush=True)
        while not stopping:
            for name, process in list(stack.processes.items()):
                if process.poll() is not None:
                    print(f"{name} stopped (exit {process.returncode}); restarting", file=sys.stderr, flush=True)
                    stack.start(next(s for s in SERVICES if s.name == name))
            if seaweedfs.process is not None and seaweedfs.process.poll() is not None:
                print("the object store stopped; restarting", file=sys.stderr, flush=True)
                seaweedfs.start()
            time.sleep(0.5)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping ...", flush=True)
        stack.stop_all()
        print("stopping the object store ...", flush=True)
        seaweedfs.stop()
        if not server_url:
            print("stopping the embedded PostgreSQL ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
