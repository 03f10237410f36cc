"""The first administrator of a production installation is created from the command line."""

import os
import subprocess
import sys

from scripts.stack import ROOT
from tests.helpers import Api


async def test_bootstrap_creates_an_admin_once(api: Api) -> None:
    env = os.environ | {"GATEWAY_DATABASE_URL": api.stack.database_url("gateway")}
    command = [sys.executable, "-m", "gateway.bootstrap", "--username", "first.admin", "--display-name", "First"]
    first = subprocess.run(command, input="a-very-long-password\n", capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=60)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(command, input="another-long-password\n", capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=60)
    assert again.returncode == 1
    short = subprocess.run([*command[:-4], "--username", "x.admin", "--display-name", "X"], input="short\n",
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert short.returncode == 2
    login = await api.client.post("/auth/token", data={"grant_type": "password", "username": "first.admin",
                                                       "password": "a-very-long-password"})
    assert login.status_code == 200
    me = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["role"] == "admin" and me.json()["jurisdiction"]["level"] == "national"
