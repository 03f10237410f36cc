"""The fault drill of issue 7: the whole system on its own embedded PostgreSQL, a load driver posting hotline
intakes and registering children through the gateway, and the faults (each service SIGKILLed and restarted, the
object store SIGKILLed and restarted, then PostgreSQL stopped hard and started again), followed by the checks that
nothing acknowledged was lost or doubled and that the statistics converge to an independent count.

Used by `tests/faults/test_faults.py` (the short form in CI) and `bench/faults.py` (the long form). The system here
never touches the shared PostgreSQL on 127.0.0.1:5432: it runs its own server under `var/faults-<id>`.
"""

import asyncio
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from scripts.stack import (
    ROOT,
    SERVICES,
    Postgres,
    SeaweedFS,
    Stack,
    create_databases,
    embedded_postgres,
    free_port,
    migrate,
    new_client_secrets,
)
from services.common.locations import communes, province_of
from services.common.storage import new_master_keys_json
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE

SERVICE_DEFS = {service.name: service for service in SERVICES}
HOTLINE = "demo-hotline_operator"
OFFICER = "demo-child_protection_officer"
STATISTICIAN = "demo-province_statistician"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
# Intakes land in the demo commune and in other communes of its province: the hotline is national, the province
# figure is the sum of its communes.
PROVINCE_COMMUNES = [DEMO_COMMUNE, *sorted(c for c in communes()
                                           if province_of(c) == DEMO_PROVINCE and c != DEMO_COMMUNE)[:4]]
ABUSE_FORMS = ["violence", "neglect", "sexual_abuse", "abandonment", "exploitation", "other"]
ENVIRONMENTS = ["home", "school", "community", "online"]
# A request through the gateway to a stopped service must be refused, not hang until the gateway's upstream
# timeout (30 s): it normally takes milliseconds (bench/results/faults.md); the bound leaves room for a loaded machine.
UNAVAILABLE_WITHIN_SECONDS = 5.0
# Probes wait longer than that, so a slow answer is measured rather than cut off.
PROBE_TIMEOUT_SECONDS = 30.0


# ---------------------------------------------------------------------------------------------------- the system


class RestartablePostgres:
    """The embedded server (pgserver), which this drill stops hard and starts again on the same data and socket."""

    def __init__(self, data_dir: Path):
        self.pg: Postgres = embedded_postgres(data_dir)
        self.server: Any = self.pg.server
        self.socket_dir = self.server.get_uri().split("host=", 1)[1]

    def _pg_ctl(self, args: list[str]) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as far as the data is concerned: no checkpoint, recovery from the WAL on start."""
        self._pg_ctl(["-w", "-m", mode, "stop"])

    def start(self) -> None:
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start"])


@dataclass
class FaultSystem:
    """Four service processes on free ports over their own PostgreSQL and their own object store (SeaweedFS)."""

    data_dir: Path
    postgres: RestartablePostgres
    stack: Stack
    seaweedfs: SeaweedFS

    @classmethod
    def start(cls, label: str = "faults") -> "FaultSystem":
        run_id = uuid.uuid4().hex[:8]
        data_dir = ROOT / "var" / f"{label}-{run_id}"
        data_dir.mkdir(parents=True)
        postgres = RestartablePostgres(data_dir / "pg")
        names = {s.name: f"faults_{s.name}" for s in SERVICES}
        extra_env = {
            "reporting": {"REPORTING_FEED_IDLE_SECONDS": "0.2"},
            "gateway": {"GATEWAY_RATE_LIMIT_PER_USER": "1000000", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "1000000"},
        }
        logs = ROOT / "var" / "test-logs" / f"{label}-{run_id}"
        logs.mkdir(parents=True, exist_ok=True)
        seaweedfs = SeaweedFS(data_dir / "seaweedfs", access_key=uuid.uuid4().hex[:20], secret_key=uuid.uuid4().hex,
                              log_path=logs / "seaweedfs.log")
        stack = Stack(pg=postgres.pg, database_names=names, ports={s.name: free_port() for s in SERVICES},
                      client_secrets=new_client_secrets(), environment="development", seed_demo=True,
                      log_dir=logs, extra_env=extra_env,
                      object_store=seaweedfs.access(new_master_keys_json("faults")))
        system = cls(data_dir, postgres, stack, seaweedfs)
        try:
            seaweedfs.start()
            create_databases(postgres.pg, list(names.values()))
            with ThreadPoolExecutor(len(SERVICES)) as pool:  # four alembic processes at once: a faster start
                list(pool.map(lambda s: migrate(stack.database_url(s.name), s.migrations), SERVICES))
            seaweedfs.wait_ready()
            stack.start_all()
        except BaseException:
            system.close()
            raise
        return system

    def close(self) -> None:
        self.stack.stop_all()
        self.seaweedfs.stop()
        try:
            self.postgres.stop("fast")
        except subprocess.CalledProcessError:
            pass  # already stopped: a drill that failed between stop and start
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def dsn(self, service: str) -> str:
        return self.stack.database_url(service).replace("postgresql+asyncpg://", "postgresql://")

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.stack.processes.items() if process.poll() is None}


# ---------------------------------------------------------------------------------------------------- the load


class Tokens:
    """Bearer tokens of the demo users, fetched again when the gateway refuses one. Every sign-in answer other than
    200 is counted in `failures` as "sign-in <status>", wherever the sign-in happened: a 500 there is as wrong as
    anywhere else, and must not hide as "login unavailable"."""

    def __init__(self, client: httpx.AsyncClient, failures: Counter[str] | None = None):
        self.client = client
        self.cache: dict[str, str] = {}
        self.failures: Counter[str] = Counter() if failures is None else failures

    async def headers(self, username: str) -> dict[str, str]:
        if username not in self.cache:
            response = await self.client.post("/auth/token", data={"grant_type": "password", "username": username,
                                                                   "password": "demo"})
            if response.status_code != 200:
                self.failures[f"sign-in {response.status_code}"] += 1
                raise LoginUnavailable(f"login answered {response.status_code}")
            self.cache[username] = response.json()["access_token"]
        return {"Authorization": f"Bearer {self.cache[username]}"}

    def forget(self, username: str) -> None:
        self.cache.pop(username, None)


class LoginUnavailable(Exception):
    """The gateway did not issue a token just now (counted by `Tokens`; only a 503 is expected, while its database
    is down)."""


class Refused(AssertionError):
    """An answer no fault explains (a 4xx on a valid request): the drill stops on it."""


@dataclass
class DriverLog:
    intakes: dict[str, list[str]] = field(default_factory=dict)  # Idempotency-Key -> case id of every 200/201
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # Idempotency-Key -> the intake sent
    intake_statuses: Counter[int] = field(default_factory=Counter)  # the status of every acknowledgment
    children: dict[str, str] = field(default_factory=dict)  # full name -> child id
    child_answers: Counter[str] = field(default_factory=Counter)  # "201", or "409" when a retry found its record
    # What unacknowledged attempts met: a status, "sign-in <status>" (any sign-in, also outside the load), or an error.
    failures: Counter[str] = field(default_factory=Counter)
    unavailable_seconds: list[float] = field(default_factory=list)  # how long each 503 took to come back
    intake_acknowledged_at: list[float] = field(default_factory=list)  # monotonic time of every intake's answer
    # (monotonic start, user, answer, seconds) of every attempt, for reading a run's timeline
    attempts: list[tuple[float, str, str, float]] = field(default_factory=list)
    longest_wait: float = 0.0  # the longest time one record took from its first attempt to its acknowledgment
    retried: int = 0  # records that needed more than one attempt

    @property
    def server_errors(self) -> dict[str, int]:
        """Every 5xx answer but 503 (a fault explains a 503; nothing explains a 500), sign-ins included."""
        return {answer: n for answer, n in self.failures.items()
                if answer.rsplit(" ", 1)[-1].isdigit() and int(answer.rsplit(" ", 1)[-1]) >= 500
                and not answer.endswith("503")}


class LoadDriver:
    """A few intake workers and one registry worker, each posting one record at a time and retrying it until the
    system acknowledges it (the intake must go on while the registry is down, so they do not share a worker).

    An intake is retried with the same Idempotency-Key; a child has no such key, so a retry that finds its own
    earlier attempt committed gets 409 with that record as the candidate, which acknowledges it.
    """

    def __init__(self, client: httpx.AsyncClient, *, workers: int = 3, pause: float = 0.05,
                 patience: float = 90.0, seed: int = 7):
        self.client, self.workers, self.pause, self.patience = client, workers, pause, patience
        self.log = DriverLog()
        self.tokens = Tokens(client, self.log.failures)
        self.random = random.Random(seed)
        self.run_tag = uuid.uuid4().hex[:8]
        self.count = 0

    async def run(self, stop: asyncio.Event) -> None:
        workers = [self._worker(stop, self.report_intake) for _ in range(self.workers)]
        await asyncio.gather(*workers, self._worker(stop, self.register_child))

    async def _worker(self, stop: asyncio.Event, post: Callable[[int], Awaitable[None]]) -> None:
        while not stop.is_set():
            self.count += 1
            await post(self.count)
            await asyncio.sleep(self.pause)

    async def report_intake(self, number: int) -> None:
        key = f"fault-{self.run_tag}-{number}"
        self.log.bodies[key] = {
            "reporter": {"anonymous": True},
            "child": {"first_name": "An", "approximate_age": self.random.randint(0, 17),
                      "sex": self.random.choice(["male", "female", "unknown"])},
            "incident_commune_code": self.random.choice(PROVINCE_COMMUNES),
            "abuse_forms": [self.random.choice(ABUSE_FORMS)],
            "environment": self.random.choice(ENVIRONMENTS),
            "description": f"Fault drill report {number}",
        }
        await self.send_intake(key)

    async def send_intake(self, key: str) -> None:
        """Post the intake under `key` until acknowledged: every attempt carries the same key and body."""
        body = self.log.bodies[key]

        async def send() -> httpx.Response:
            headers = await self.tokens.headers(HOTLINE) | {"Idempotency-Key": key}
            return await self.client.post("/cases/v1/cases", json=body, headers=headers)

        response = await self._until_acknowledged(HOTLINE, send, accept=(200, 201))
        self.log.intake_acknowledged_at.append(time.monotonic())
        self.log.intakes.setdefault(key, []).append(response.json()["id"])
        self.log.intake_statuses[response.status_code] += 1

    async def register_child(self, number: int) -> None:
        full_name = f"Nguyễn Thị {_letters(number)} {self.run_tag[:4].translate(_DIGITS_AS_LETTERS)}"
        body = {"full_name": full_name, "sex": "female", "commune_code": DEMO_COMMUNE,
                "date_of_birth": (date(2016, 1, 1) + timedelta(days=number % 2000)).isoformat()}

        async def send() -> httpx.Response:
            headers = await self.tokens.headers(OFFICER)
            return await self.client.post("/registry/v1/children", json=body, headers=headers)

        response = await self._until_acknowledged(OFFICER, send, accept=(201, 409))
        if response.status_code == 201:
            self.log.children[full_name] = response.json()["id"]
        else:
            candidates = [c for c in response.json()["candidates"] if c.get("full_name") == full_name]
            if len(candidates) != 1:
                raise Refused(f"409 for a child registered once: {response.text}")
            self.log.children[full_name] = candidates[0]["id"]
        self.log.child_answers[str(response.status_code)] += 1

    async def _until_acknowledged(self, username: str, send: Callable[[], Awaitable[httpx.Response]],
                                  accept: tuple[int, ...]) -> httpx.Response:
        first = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            started = time.monotonic()
            try:
                response = await send()
            except (httpx.TransportError, LoginUnavailable) as exc:  # the gateway or its database is down
                if isinstance(exc, httpx.TransportError):  # a refused sign-in is counted where it happened
                    self.log.failures[type(exc).__name__] += 1
                self.log.attempts.append((started, username, type(exc).__name__, time.monotonic() - started))
            else:
                self.log.attempts.append((started, username, str(response.status_code), time.monotonic() - started))
                if response.status_code in accept:
                    now = time.monotonic()
                    self.log.longest_wait = max(self.log.longest_wait, now - first)
                    self.log.retried += attempts > 1
                    return response
                self.log.failures[str(response.status_code)] += 1
                if response.status_code == 503:
                    self.log.unavailable_seconds.append(time.monotonic() - started)
                elif response.status_code == 401:
                    self.tokens.forget(username)
                elif response.status_code < 500:
                    raise Refused(f"{response.status_code}: {response.text[:300]}")
            if time.monotonic() - first > self.patience:
                raise AssertionError(f"a record was not acknowledged within {self.patience} s")
            await asyncio.sleep(0.2)


_DIGITS_AS_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def _letters(number: int) -> str:
    """A distinct pronounceable-enough word per number (names must hold letters only)."""
    word = ""
    while True:
        number, digit = divmod(number, 26)
        word = "abcdefghijklmnopqrstuvwxyz"[digit] + word
        if number == 0:
            return word.capitalize()


# ---------------------------------------------------------------------------------------------------- the faults


@dataclass
class Probe:
    status: int | None  # None: the connection was refused or timed out
    problem_json: bool
    seconds: float
    call: str = ""  # what was called, when a fault is probed with several kinds of call


@dataclass
class FaultOutcome:
    fault: str
    stopped_at: float  # monotonic time of the kill (or stop)
    start_seconds: float  # how long the start command took (pg_ctl start -w; nothing for a process)
    ready_at: float  # monotonic time the service (every service, for PostgreSQL) answered ready again
    restart_to_ready_seconds: float  # from the start command until ready
    probes: list[Probe]
    restarted_processes: list[str] = field(default_factory=list)
    informative: bool = False  # measured, not one of the claims checked

    @property
    def down_seconds(self) -> float:
        return self.ready_at - self.stopped_at

    def longest_silence(self, log: "DriverLog") -> float:
        """The longest time without an intake acknowledged, from the fault to the first acknowledgment after the
        recovery: the outage hotline staff saw."""
        during = [t for t in log.intake_acknowledged_at if self.stopped_at < t <= self.ready_at]
        after = [t for t in log.intake_acknowledged_at if t > self.ready_at][:1]
        return max((b - a for a, b in pairwise([self.stopped_at, *during, *after])), default=0.0)


# A call through the gateway per service, with the user allowed to make it.
PROBES = {
    "registry": (OFFICER, "/registry/v1/children?limit=1"),
    "cases": (HOTLINE, "/cases/v1/cases?limit=1"),
    "reporting": (STATISTICIAN, "/reporting/v1/indicators"),
}


async def probe(client: httpx.AsyncClient, tokens: Tokens, service: str) -> Probe:
    username, path = PROBES[service]
    headers = await tokens.headers(username)
    return await timed_call(client, "GET", path, f"GET {path}", headers=headers)


async def timed_call(client: httpx.AsyncClient, method: str, path: str, call: str, **kwargs: Any) -> Probe:
    started = time.monotonic()
    try:
        response = await client.request(method, path, timeout=PROBE_TIMEOUT_SECONDS, **kwargs)
    except httpx.TransportError:
        return Probe(None, False, time.monotonic() - started, call)
    return Probe(response.status_code, response.headers.get("content-type", "").startswith("application/problem+json"),
                 time.monotonic() - started, call)


def unknown_key_token(issuer: str) -> str:
    """A well-formed token of our issuer naming a key id the gateway does not know: the gateway looks the key up in
    its own database (a rotation on another replica), outside any request's unit of work. The signature is never
    reached."""
    parts = ({"alg": "ES256", "typ": "JWT", "kid": "unknown-key-id"},
             {"sub": "nobody", "iss": issuer, "aud": "child-protection", "exp": 4102444800})
    encoded = (base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=") for part in parts)
    return ".".join(encoded) + ".c2lnbmF0dXJl"


async def postgres_down_probes(client: httpx.AsyncClient, tokens: Tokens) -> list[Probe]:
    """One round of calls while PostgreSQL is down, each through a different path to the database: a service's
    unit of work, the gateway's sign-in, and the gateway's key lookup for a token it cannot verify from memory."""
    return [
        await probe(client, tokens, "cases"),
        await timed_call(client, "POST", "/auth/token", "sign-in",
                         data={"grant_type": "password", "username": OFFICER, "password": "demo"}),
        await timed_call(client, "GET", PROBES["registry"][1], "unknown signing key",
                         headers={"Authorization": f"Bearer {unknown_key_token(str(client.base_url).rstrip('/'))}"}),
    ]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def kill_and_restart(system: FaultSystem, client: httpx.AsyncClient, tokens: Tokens, name: str, *,
                           down_for: float, max_probes: int = 10) -> FaultOutcome:
    """SIGKILL one service, leave it down `down_for` seconds, start it again (as a supervisor would) and wait until
    it is ready; meanwhile call it through the gateway every 0.2 s while its port is closed."""
    if name != "gateway":
        await tokens.headers(PROBES[name][0])  # log in before the fault, so probes measure only the proxy
    port = system.stack.ports[name]
    await asyncio.to_thread(system.stack.stop, name, kill=True)
    killed = time.monotonic()
    probes: list[Probe] = []
    starting: float | None = None
    started = 0.0
    while name != "gateway" and len(probes) < max_probes:
        if starting is None and time.monotonic() - killed >= down_for:
            starting = time.monotonic()
            await asyncio.to_thread(system.stack.start, SERVICE_DEFS[name])
            started = time.monotonic()
        if await asyncio.to_thread(listening, port):
            break
        answer = await probe(client, tokens, name)
        # Counted only when the port was still closed after the answer: the service was down throughout the call.
        if not await asyncio.to_thread(listening, port):
            probes.append(answer)
        await asyncio.sleep(0.2)
    if starting is None:
        await asyncio.sleep(max(0.0, down_for - (time.monotonic() - killed)))
        starting = time.monotonic()
        await asyncio.to_thread(system.stack.start, SERVICE_DEFS[name])
        started = time.monotonic()
    await asyncio.to_thread(system.stack.wait_ready, name, 60.0)
    ready = time.monotonic()
    return FaultOutcome(f"SIGKILL {name}", killed, started - starting, ready, ready - starting, probes)


async def attach_probe_file(client: httpx.AsyncClient, driver: "LoadDriver") -> str:
    """A case file for the object-store probes, uploaded before the faults and downloaded during them; its case is
    one of the drill's acknowledged intakes (so the independent count still matches)."""
    key = f"fault-{driver.run_tag}-file"
    driver.log.bodies[key] = {
        "reporter": {"anonymous": True}, "child": {"first_name": "An", "approximate_age": 8, "sex": "female"},
        "incident_commune_code": DEMO_COMMUNE, "abuse_forms": ["neglect"], "environment": "home",
        "description": "Fault drill report with a file",
    }
    await driver.send_intake(key)
    case_id = driver.log.intakes[key][0]
    uploaded = await client.post(f"/cases/v1/cases/{case_id}/attachments", headers=await driver.tokens.headers(OFFICER),
                                 data={"kind": "other"},
                                 files={"file": ("drill.pdf", b"%PDF-1.7\n" + os.urandom(20_000), "application/pdf")})
    uploaded.raise_for_status()
    return f"/cases/v1/attachments/{uploaded.json()['id']}/content"


async def kill_object_store(system: FaultSystem, client: httpx.AsyncClient, tokens: Tokens, file_url: str, *,
                            down_for: float, max_probes: int = 10) -> FaultOutcome:
    """SIGKILL the object store under load, download a case file through the gateway every 0.2 s while it is down
    (each must be refused with 503 problem+json at once), start it again and wait until the file downloads again.
    The intake load goes on meanwhile: nothing but files depends on the store."""
    headers = await tokens.headers(OFFICER)
    await asyncio.to_thread(system.seaweedfs.stop, kill=True)
    killed = time.monotonic()
    probes: list[Probe] = []
    while len(probes) < max_probes or time.monotonic() - killed < down_for:
        started = time.monotonic()
        try:
            response = await client.get(file_url, headers=headers, timeout=5.0)
            probes.append(Probe(response.status_code,
                                response.headers.get("content-type", "").startswith("application/problem+json"),
                                time.monotonic() - started))
        except httpx.TransportError:
            probes.append(Probe(None, False, time.monotonic() - started))
        if len(probes) >= max_probes and time.monotonic() - killed >= down_for:
            break
        await asyncio.sleep(0.2)
    starting = time.monotonic()
    await asyncio.to_thread(system.seaweedfs.start)
    started = time.monotonic()
    await asyncio.to_thread(system.seaweedfs.wait_ready)
    while (await client.get(file_url, headers=await tokens.headers(OFFICER))).status_code != 200:
        if time.monotonic() - starting > 60:
            raise AssertionError("the file did not download again within 60 s of the store's restart")
        await asyncio.sleep(0.2)
    ready = time.monotonic()
    return FaultOutcome("SIGKILL object store", killed, started - starting, ready, ready - starting, probes)


async def freeze_and_thaw(system: FaultSystem, client: httpx.AsyncClient, tokens: Tokens, name: str, *,
                          frozen_for: float) -> FaultOutcome:
    """SIGSTOP one service (a hung process: its port still accepts connections) and SIGCONT it after `frozen_for`
    seconds. Not one of issue 7's claims: it shows what a client waits for when a service hangs instead of dying."""
    await tokens.headers(PROBES[name][0])
    patience = frozen_for + 5.0  # long enough to see whether the gateway gives up before the service resumes
    process = system.stack.processes[name]
    os.kill(process.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    thawing = frozen + frozen_for
    thaw = asyncio.get_running_loop().call_later(frozen_for, os.kill, process.pid, signal.SIGCONT)
    probes: list[Probe] = []
    try:
        while time.monotonic() < thawing:
            username, path = PROBES[name]
            started = time.monotonic()
            try:
                response = await client.get(path, headers=await tokens.headers(username), timeout=patience)
                probes.append(Probe(response.status_code,
                                    response.headers.get("content-type", "").startswith("application/problem+json"),
                                    time.monotonic() - started))
            except httpx.TimeoutException:
                probes.append(Probe(None, False, time.monotonic() - started))
            await asyncio.sleep(0.2)
    finally:
        thaw.cancel()
        os.kill(process.pid, signal.SIGCONT)  # nothing happens if it was thawed already
    await asyncio.to_thread(system.stack.wait_ready, name, 60.0)
    ready = time.monotonic()
    return FaultOutcome(f"SIGSTOP {name} for {frozen_for:g} s", frozen, 0.0, ready, ready - thawing, probes,
                        informative=True)


async def all_ready(system: FaultSystem, timeout: float) -> None:
    """Wait until every service's /readyz answers 200."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            statuses = []
            for name in SERVICE_DEFS:
                try:
                    statuses.append((await client.get(f"{system.stack.url(name)}/readyz")).status_code)
                except httpx.TransportError:
                    statuses.append(None)
            if all(status == 200 for status in statuses):
                return
            if time.monotonic() - started > timeout:
                raise AssertionError(f"not ready {timeout} s after PostgreSQL came back: "
                                     f"{dict(zip(SERVICE_DEFS, statuses, strict=True))}")
            await asyncio.sleep(0.2)


async def restart_postgres(system: FaultSystem, client: httpx.AsyncClient, tokens: Tokens, *,
                           down_for: float) -> FaultOutcome:
    """Stop PostgreSQL hard under load and start it again; the services must recover with no restart of theirs."""
    for username, _ in PROBES.values():
        await tokens.headers(username)
    before = system.pids()
    await asyncio.to_thread(system.postgres.stop, "immediate")
    stopped = time.monotonic()
    probes: list[Probe] = []
    while time.monotonic() - stopped < down_for or not probes:
        probes += await postgres_down_probes(client, tokens)
        await asyncio.sleep(0.2)
    starting = time.monotonic()
    await asyncio.to_thread(system.postgres.start)
    started = time.monotonic()
    await all_ready(system, 60.0)
    ready = time.monotonic()
    after = system.pids()
    restarted = sorted(name for name in before if after.get(name) != before[name])
    return FaultOutcome("restart PostgreSQL", stopped, started - starting, ready, ready - starting, probes,
                        restarted)


# ---------------------------------------------------------------------------------------------------- the checks


@dataclass
class Verdict:
    intakes: int
    cases_in_database: int
    keys_with_duplicates: dict[str, int]
    keys_with_several_ids: dict[str, list[str]]
    unreadable_cases: list[str]
    children: int
    children_in_database: int
    children_duplicated: dict[str, int]
    unreadable_children: list[str]
    independent: dict[str, int]
    reported: dict[str, int | None]
    converged_after_seconds: float | None


def current_year_bounds() -> tuple[str, datetime, datetime]:
    year = datetime.now(VIETNAM).year
    return str(year), datetime(year, 1, 1, tzinfo=VIETNAM), datetime(year + 1, 1, 1, tzinfo=VIETNAM)


async def independent_counts(system: FaultSystem) -> dict[str, int]:
    """The figures counted straight from the producers' databases, as the indicator definitions say."""
    _, start, end = current_year_bounds()
    cases = await asyncpg.connect(system.dsn("cases"))
    try:
        received = await cases.fetchval(
            "SELECT count(*) FROM case_record WHERE province_code = $1 AND received_at >= $2 AND received_at < $3",
            DEMO_PROVINCE, start, end)
    finally:
        await cases.close()
    registry = await asyncpg.connect(system.dsn("registry"))
    try:
        # Children followed on the last day of the year: active, not merged away, not yet 16 then.
        last_day = end.date() - timedelta(days=1)
        followed = await registry.fetchval(
            "SELECT count(*) FROM child WHERE province_code = $1 AND merged_into_id IS NULL AND status = 'active' "
            "AND date_of_birth > $2", DEMO_PROVINCE, last_day.replace(year=last_day.year - 16))
    finally:
        await registry.close()
    return {"VV01": int(received), "TE01": int(followed)}


async def reported_figures(client: httpx.AsyncClient, tokens: Tokens) -> dict[str, int | None]:
    period, _, _ = current_year_bounds()
    response = await client.get("/reporting/v1/values", headers=await tokens.headers(STATISTICIAN), params={
        "indicator": "HT-VV01,HT-TE01", "period": period, "location": DEMO_PROVINCE, "breakdown": "total"})
    response.raise_for_status()
    # Keyed without the catalogue's "HT-" prefix of local codes, as the independent count is.
    return {row["indicator"].removeprefix("HT-"): row["value"] for row in response.json()["values"]
            if row["breakdown"] is None}


async def verify(system: FaultSystem, client: httpx.AsyncClient, driver: LoadDriver, *,
                 converge_within: float = 30.0) -> Verdict:
    log = driver.log
    database = await asyncpg.connect(system.dsn("cases"))
    try:
        rows = await database.fetch(
            "SELECT idempotency_key, count(*) AS n FROM case_record WHERE idempotency_key LIKE $1 "
            "GROUP BY idempotency_key", f"fault-{driver.run_tag}-%")
    finally:
        await database.close()
    per_key = {row["idempotency_key"]: int(row["n"]) for row in rows}
    registry = await asyncpg.connect(system.dsn("registry"))
    try:
        named = await registry.fetch("SELECT full_name, count(*) AS n FROM child WHERE full_name = ANY($1::text[]) "
                                     "GROUP BY full_name", list(log.children))
    finally:
        await registry.close()
    per_name = {row["full_name"]: int(row["n"]) for row in named}

    gate = asyncio.Semaphore(8)

    async def readable(path: str, username: str) -> bool:
        """Whether the record can be read. A 503 (or no answer) says nothing about the record, only that the system
        is busy just now (on a loaded machine the gateway can miss its connect timeout): asked again, within a
        bound; any other answer is final."""
        deadline = time.monotonic() + 120
        while True:
            async with gate:
                try:
                    response = await client.get(path, headers=await driver.tokens.headers(username))
                except (httpx.TransportError, LoginUnavailable):
                    response = None
            if response is not None and response.status_code != 503:
                return response.status_code == 200
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.5)

    case_ids = sorted({ids[0] for ids in log.intakes.values()})
    case_ok = await asyncio.gather(*(readable(f"/cases/v1/cases/{i}", HOTLINE) for i in case_ids))
    child_ids = sorted(log.children.values())
    child_ok = await asyncio.gather(*(readable(f"/registry/v1/children/{i}", OFFICER) for i in child_ids))

    independent = await independent_counts(system)
    started = time.monotonic()
    converged: float | None = None
    reported: dict[str, int | None] = {}
    while time.monotonic() - started < converge_within:
        reported = await reported_figures(client, driver.tokens)
        if reported == independent:
            converged = time.monotonic() - started
            break
        await asyncio.sleep(0.2)
    return Verdict(
        intakes=len(log.intakes), cases_in_database=sum(per_key.values()),
        keys_with_duplicates={k: n for k, n in per_key.items() if n != 1},
        keys_with_several_ids={k: ids for k, ids in log.intakes.items() if len(set(ids)) != 1},
        unreadable_cases=[i for i, ok in zip(case_ids, case_ok, strict=True) if not ok],
        children=len(log.children), children_in_database=sum(per_name.values()),
        children_duplicated={k: n for k, n in per_name.items() if n != 1},
        unreadable_children=[i for i, ok in zip(child_ids, child_ok, strict=True) if not ok],
        independent=independent, reported=reported, converged_after_seconds=converged,
    )


# ---------------------------------------------------------------------------------------------------- the drill


@dataclass
class DrillResult:
    outcomes: list[FaultOutcome]
    log: DriverLog
    verdict: Verdict
    seconds: float
    started_at: datetime


async def drill(system: FaultSystem, *, rounds: int = 1, workers: int = 3, pause: float = 0.05,
                settle: float = 1.0, down_for: float = 1.0, pg_down_for: float = 2.0, freeze_for: float = 0.0,
                retry_same_keys: bool = True) -> DrillResult:
    """Run the load, the faults in turn (each service, then PostgreSQL) for `rounds`, then optionally freeze the
    cases service for `freeze_for` seconds, drain, and check."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    outcomes: list[FaultOutcome] = []
    async with httpx.AsyncClient(base_url=system.stack.url("gateway"), timeout=10.0) as client:
        driver = LoadDriver(client, workers=workers, pause=pause)
        file_url = await attach_probe_file(client, driver)
        stop = asyncio.Event()
        load = asyncio.create_task(driver.run(stop))
        try:
            await asyncio.sleep(settle)
            for _ in range(rounds):
                for name in ("registry", "cases", "reporting", "gateway"):
                    outcomes.append(await kill_and_restart(system, client, driver.tokens, name, down_for=down_for))
                    await asyncio.sleep(settle)
                outcomes.append(await kill_object_store(system, client, driver.tokens, file_url, down_for=down_for))
                await asyncio.sleep(settle)
                outcomes.append(await restart_postgres(system, client, driver.tokens, down_for=pg_down_for))
                await asyncio.sleep(settle)
            if freeze_for:
                outcomes.append(await freeze_and_thaw(system, client, driver.tokens, "cases", frozen_for=freeze_for))
                await asyncio.sleep(settle)
        finally:
            stop.set()
            await load
        if retry_same_keys:
            await replay_some_keys(driver)
        verdict = await verify(system, client, driver)
    return DrillResult(outcomes, driver.log, verdict, time.monotonic() - started, started_at)


async def replay_some_keys(driver: LoadDriver, count: int = 20) -> None:
    """Send some acknowledged intakes once more, as a phone that never saw the answer would: same key, same case."""
    for key in list(driver.log.intakes)[:count]:
        await driver.send_intake(key)


def problems(result: DrillResult) -> list[str]:
    """Every way this drill's result falls short of issue 7; empty when all five claims hold."""
    verdict, found = result.verdict, []
    if result.log.retried == 0:
        found.append("no record needed a retry: the faults missed the load")
    if result.log.server_errors:
        found.append(f"server errors (5xx other than 503, sign-ins included): {result.log.server_errors}")
    if verdict.unreadable_cases or verdict.unreadable_children:
        found.append(f"acknowledged but unreadable: {len(verdict.unreadable_cases)} cases, "
                     f"{len(verdict.unreadable_children)} children")
    if verdict.cases_in_database != verdict.intakes or verdict.children_in_database != verdict.children:
        found.append(f"stored vs acknowledged: cases {verdict.cases_in_database}/{verdict.intakes}, "
                     f"children {verdict.children_in_database}/{verdict.children}")
    if verdict.keys_with_duplicates or verdict.keys_with_several_ids or verdict.children_duplicated:
        found.append(f"duplicates: {len(verdict.keys_with_duplicates)} keys with several cases, "
                     f"{len(verdict.keys_with_several_ids)} keys answered with several ids, "
                     f"{len(verdict.children_duplicated)} children stored twice")
    expected = {"VV01": verdict.intakes, "TE01": verdict.children}
    if verdict.independent != expected or verdict.reported != verdict.independent:
        found.append(f"figures: reported {verdict.reported}, counted {verdict.independent}, acknowledged {expected}")
    for outcome in result.outcomes:
        if outcome.restarted_processes:
            found.append(f"{outcome.fault}: processes restarted {outcome.restarted_processes}")
        wrong = [p for p in outcome.probes
                 if p.status != 503 or not p.problem_json or p.seconds >= UNAVAILABLE_WITHIN_SECONDS]
        if wrong and not outcome.informative:
            found.append(f"{outcome.fault}: {len(wrong)} of {len(outcome.probes)} calls not refused with 503 "
                         f"problem+json within {UNAVAILABLE_WITHIN_SECONDS} s (statuses "
                         f"{sorted(Counter(p.status for p in wrong).items(), key=str)})")
    return found
