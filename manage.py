#!/usr/bin/env python3
"""The two commands of the quick start, with nothing but Python 3.11+ installed:

    python3 manage.py run     # install, migrate, seed demo data, start all four services
    python3 manage.py test    # install, lint, run the whole test suite

Anything after the command is passed on (`python3 manage.py test -k outbox`, `python3 manage.py run --no-demo`).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is required")
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("installing dependencies ...", flush=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(wanted)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test", "lint", "bench"):
        print(__doc__)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    ensure_environment()
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    os.chdir(ROOT)
    if command == "run":
        # Replace this process, so that Ctrl-C and SIGTERM reach the run command itself.
        os.execve(PYTHON, [str(PYTHON), "-m", "scripts.run", *rest], env)
    if command == "lint":
        return subprocess.call([PYTHON, "-m", "ruff", "check", "."], cwd=ROOT, env=env)
    if command == "bench":
        os.execve(PYTHON, [str(PYTHON), "-m", *rest], env)
    lint = subprocess.call([PYTHON, "-m", "ruff", "check", "."], cwd=ROOT, env=env)
    tests = subprocess.call([PYTHON, "-m", "pytest", *rest], cwd=ROOT, env=env)
    return tests or lint


if __name__ == "__main__":
    sys.exit(main())
