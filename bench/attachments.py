"""Case files under load: concurrent uploads of a few MB through the gateway into SeaweedFS (streamed by the gateway,
type-checked, encrypted and stored by the cases service), against a direct S3 PUT of the same bytes, with the peak
memory of every process.

    .venv/bin/python -m bench.attachments [--uploads 50] [--size 5000000] [--rounds 3]

Starts the whole system and its own SeaweedFS on fresh databases (local PostgreSQL if it answers, else embedded).
Each round sends `--uploads` files at once both ways, alternating (A, B, A, B, ...): A = `POST
/cases/v1/cases/{id}/attachments` through the gateway as a commune officer; B = `PutObject` of the same bytes
straight to SeaweedFS with aiobotocore (no gateway, no service, no encryption). A sampler reads every process's
resident memory (`/proc/<pid>/status` VmRSS) every 20 ms. Writes `bench/results/attachments.md`.
"""

import argparse
import asyncio
import contextlib
import io
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiobotocore.session import get_session

from bench.common import running_stack
from scripts.stack import ROOT, SeaweedFS, Stack
from services.common.storage import new_master_keys_json

RESULTS = ROOT / "bench" / "results" / "attachments.md"
MB = 1_000_000


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class MemorySampler:
    """Peak resident memory per process, sampled in a thread while the load runs."""

    pids: dict[str, int]
    interval: float = 0.02
    peaks: dict[str, int] = field(default_factory=dict)
    idle: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.idle = {name: rss_bytes(pid) for name, pid in self.pids.items()}
        self.peaks = dict(self.idle)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], rss_bytes(pid))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def make_file(kind: str, size: int) -> bytes:
    if kind == "pdf":
        return b"%PDF-1.7\n" + os.urandom(size - 9)
    # A photo of about `size` bytes with EXIF and GPS, as a phone takes it (the metadata-removal path).
    from PIL import Image

    from tests.attachments.conftest import exif_with_gps

    side = 600
    while True:
        image = Image.effect_noise((side, side), 60).convert("RGB")
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=97, exif=exif_with_gps())
        if out.tell() >= size:
            return out.getvalue()
        side = int(side * (size / out.tell()) ** 0.5) + 16


async def gateway_round(client: httpx.AsyncClient, headers: dict[str, str], case_id: str, content: bytes,
                        uploads: int) -> tuple[float, int]:
    async def one(index: int) -> bool:
        response = await client.post(f"/cases/v1/cases/{case_id}/attachments", headers=headers,
                                     data={"kind": "other"}, files={"file": (f"f{index}.bin", content,
                                                                             "application/octet-stream")})
        return response.status_code == 201

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(uploads)))
    return time.perf_counter() - started, results.count(False)


async def direct_round(s3: object, bucket: str, content: bytes, uploads: int) -> tuple[float, int]:
    async def one(index: int) -> bool:
        try:
            await s3.put_object(Bucket=bucket, Key=f"direct/{uuid.uuid4()}", Body=content)  # type: ignore[attr-defined]
        except Exception:
            return False
        return True

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(uploads)))
    return time.perf_counter() - started, results.count(False)


@dataclass
class Rounds:
    gateway: list[float] = field(default_factory=list)  # seconds per round
    direct: list[float] = field(default_factory=list)
    errors: int = 0


async def measure(stack: Stack, seaweedfs: SeaweedFS, content: bytes, uploads: int, rounds: int) -> Rounds:
    result = Rounds()
    limits = httpx.Limits(max_connections=uploads + 10, max_keepalive_connections=uploads + 10)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=600, limits=limits) as client, \
            get_session().create_client("s3", endpoint_url=seaweedfs.url, region_name="us-east-1",
                                        aws_access_key_id=seaweedfs.access_key,
                                        aws_secret_access_key=seaweedfs.secret_key) as s3:
        token = (await client.post("/auth/token", data={"grant_type": "password", "password": "demo",
                                                        "username": "demo-child_protection_officer"})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        case = await client.post("/cases/v1/cases", headers=headers, json={
            "incident_commune_code": "00070", "abuse_forms": ["violence"], "environment": "home",
            "description": "Benchmark case"})
        case_id = case.json()["id"]
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket="bench-direct")
        # Warm up both paths (connections, first volume growth), unmeasured.
        await gateway_round(client, headers, case_id, content, 4)
        await direct_round(s3, "bench-direct", content, 4)
        for _ in range(rounds):
            seconds, errors = await gateway_round(client, headers, case_id, content, uploads)
            result.gateway.append(seconds)
            result.errors += errors
            seconds, errors = await direct_round(s3, "bench-direct", content, uploads)
            result.direct.append(seconds)
            result.errors += errors
    return result


def render(args: argparse.Namespace, runs: dict[str, Rounds], memory: dict[str, MemorySampler],
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    total = args.uploads * args.size
    lines = [
        "# Case files: concurrent uploads through the gateway",
        "",
        f"Command: `.venv/bin/python -m bench.attachments {' '.join(sys.argv[1:])}`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores shared by the driver, the gateway, the cases service, "
        "SeaweedFS and PostgreSQL (and, on this machine, other sessions' work). "
        f"Load average at start {' / '.join(f'{x:.2f}' for x in load[0])}, at end "
        f"{' / '.join(f'{x:.2f}' for x in load[1])}.",
        "",
        f"Each round: {args.uploads} uploads of {args.size / MB:g} MB at once ({total / MB:g} MB), A = through the "
        "gateway into the cases service (multipart/form-data streamed by the gateway, type told by content, photos "
        "stripped of metadata, encrypted, stored in SeaweedFS, row and audit committed), B = `PutObject` of the same "
        f"bytes straight to SeaweedFS (baseline: the store's own cost). {args.rounds} rounds each, alternating A, B.",
        "",
        "| file | path | MB/s per round | median MB/s | errors |",
        "|---|---|---|---|---|",
    ]
    for kind, run in runs.items():
        for label, seconds in (("A: through the gateway", run.gateway), ("B: direct S3 PUT", run.direct)):
            rates = [total / MB / s for s in seconds]
            lines.append(f"| {kind} | {label} | {', '.join(f'{r:.1f}' for r in rates)} | "
                         f"{statistics.median(rates):.1f} | {run.errors if label.startswith('A') else '-'} |")
    lines += ["", "Ratio A/B (throughput through the gateway as a share of the direct PUT), per round pair:", ""]
    for kind, run in runs.items():
        ratios = [d / g for g, d in zip(run.gateway, run.direct, strict=True)]
        lines.append(f"- {kind}: median {statistics.median(ratios):.0%} (spread {min(ratios):.0%} to "
                     f"{max(ratios):.0%})")
    lines += [
        "",
        "Resident memory of each process (MB): idle before the rounds, and the peak while they ran (sampled every "
        "20 ms). A round moves " f"{total / MB:g} MB through the gateway and the cases service.",
        "",
        "| process | " + " | ".join(f"{kind}: idle | {kind}: peak | {kind}: growth" for kind in memory) + " |",
        "|---|" + "---|---|---|" * len(memory),
    ]
    names = next(iter(memory.values())).pids
    for name in names:
        cells = []
        for sampler in memory.values():
            idle, peak = sampler.idle[name] / MB, sampler.peaks[name] / MB
            cells += [f"{idle:.0f}", f"{peak:.0f}", f"{peak - idle:+.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Reading: the gateway streams upload bodies on (it never holds a file), and the cases service holds at most "
        "`CASES_OBJECT_STORE_BUFFER_BYTES` (16 MiB by default) of S3 part buffers at once; uploads beyond wait, "
        f"unread. So no process grows with the {args.uploads} files: the growth column stays far below the "
        f"{total / MB:g} MB of a round. SeaweedFS itself buffers what it writes (its own figure is given for "
        "completeness).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--size", type=int, default=5 * MB)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--buffer-bytes", type=int, default=None,
                        help="CASES_OBJECT_STORE_BUFFER_BYTES for the cases service (default: its own)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    data_dir = ROOT / "var" / f"bench-seaweedfs-{uuid.uuid4().hex[:6]}"
    seaweedfs = SeaweedFS(data_dir, access_key=uuid.uuid4().hex[:20], secret_key=uuid.uuid4().hex,
                          log_path=ROOT / "var" / "bench-logs" / "seaweedfs.log")
    seaweedfs.log_path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    load_start = os.getloadavg()
    runs: dict[str, Rounds] = {}
    memory: dict[str, MemorySampler] = {}
    seaweedfs.start()
    try:
        seaweedfs.wait_ready()
        extra = {"cases": {"CASES_OBJECT_STORE_BUFFER_BYTES": str(args.buffer_bytes)}} if args.buffer_bytes else {}
        with running_stack("bench_files", extra_env=extra,
                           object_store=seaweedfs.access(new_master_keys_json("bench"))) as stack:
            for kind in ("pdf", "jpeg"):
                content = make_file(kind, args.size)
                pids = {name: p.pid for name, p in stack.processes.items()}
                assert seaweedfs.process is not None
                pids["seaweedfs"] = seaweedfs.process.pid
                sampler = MemorySampler(pids)
                try:
                    runs[kind] = asyncio.run(measure(stack, seaweedfs, content, args.uploads, args.rounds))
                finally:
                    sampler.stop()
                memory[kind] = sampler
    finally:
        seaweedfs.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report = render(args, runs, memory, (load_start, os.getloadavg()))
    args.output.write_text(report)
    print(report)
    return 1 if any(run.errors for run in runs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
