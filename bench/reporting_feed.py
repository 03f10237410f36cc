"""A synthetic producer for the reporting benchmark: the registry's and the cases service's event feeds, the token
endpoint and the JWKS, on one real HTTP server.

Events are generated on request from their sequence number (deterministic, nothing held in memory), shaped exactly
as docs/events.md says. `POST /registry/append` adds a new revision of one child of a province after the generated
ones, and `POST /cases/append` a later revision of one case (closed as unfounded), to measure how fast a change
shows.

    .venv/bin/python -m bench.reporting_feed --port 9100 --children 1000000 --cases 100000 --jwk '{...}'
"""

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from services.common.locations import communes

GROUPS = ["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]
FORMS = ["violence", "exploitation", "sexual_abuse", "trafficking", "abandonment", "neglect", "other"]
ENVIRONMENTS = ["home", "school", "community", "online", "workplace", "other"]
START = datetime(2023, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 2.4 * 365 * 86400  # events spread evenly from 2023 to mid-2025
COMMUNES = sorted(communes())


def child_id(number: int) -> str:
    return f"c0000000-0000-4000-8000-{number:012x}"


def child_commune(number: int) -> str:
    return COMMUNES[number % len(COMMUNES)]


def child_snapshot(number: int, revision: int = 1) -> dict[str, Any]:
    rng = random.Random(number)
    commune = child_commune(number)
    born_year = 2010 + rng.randrange(16)
    groups = []
    if rng.random() < 0.1:
        groups.append({"group": rng.choice(GROUPS), "start": f"{2018 + rng.randrange(6)}-0{1 + rng.randrange(9)}-01",
                       "end": None, "supported": rng.random() < 0.8})
    return {
        "child_id": child_id(number), "revision": revision, "sex": rng.choice(("male", "female")),
        "birth_month": f"{born_year}-{1 + rng.randrange(12):02d}", "province_code": communes()[commune].province_code,
        "commune_code": commune,
        "status": "active" if rng.random() < 0.95 else "moved_away", "status_date": None if revision == 1 else
        "2025-01-01", "birth_registered": rng.random() < 0.97, "birth_registered_on": None,
        "health_insurance_valid_until": "2026-12-31" if rng.random() < 0.9 else None,
        "disability": rng.random() < 0.02, "special_groups": groups, "at_risk": rng.random() < 0.05,
    }


def case_snapshot(number: int, children: int) -> dict[str, Any]:
    rng = random.Random(-number - 1)
    received = START + timedelta(seconds=SPAN_SECONDS * number / 100_000 % SPAN_SECONDS)
    linked = rng.randrange(children)
    commune = child_commune(linked)

    def deadline(hours: float) -> dict[str, Any]:
        due = received + timedelta(hours=hours)
        met = due + timedelta(hours=rng.choice((-10, -2, 5))) if rng.random() < 0.85 else None
        return {"due_at": due.isoformat(), "met_at": met and met.isoformat(), "missed": met is None or met > due}

    emergency = rng.random() < 0.25
    deadlines = {"assessment": deadline(24), "plan_drafted": deadline(7 * 24), "plan_approval": deadline(12 * 24)}
    if emergency:
        deadlines["emergency_protection"] = deadline(12)
    closed = received + timedelta(days=60) if rng.random() < 0.5 else None
    category = rng.choice(("abused", "abused", "abused", "at_risk", "special_circumstances"))
    return {
        "category": category, "channel": rng.choice(("phone", "in_person", "through_another_person")),
        "intake_agency": rng.choice(("hotline", "hotline", "police", "peoples_committee")),
        "perpetrator_relationship": rng.choice(("parent", "relative", "stranger", "unknown")),
        "child_age_years": rng.randrange(0, 16), "child_views_taken": rng.choice((None, True, False)),
        "risk_forms": ["violence"] if category == "at_risk" else [],
        "special_groups": [rng.choice(GROUPS)] if category == "special_circumstances" else [],
        "separations": [{"decided_at": (received + timedelta(hours=6)).isoformat(), "ended_at": (
            received + timedelta(days=rng.randrange(3, 30))).isoformat(), "extended_days": 0,
            "competent_authority_extension": False}] if rng.random() < 0.05 else [],
        "case_id": f"ca000000-0000-4000-8000-{number:012x}", "revision": 1,
        "province_code": communes()[commune].province_code, "commune_code": commune,
        "received_at": received.isoformat(), "child_sex": rng.choice(("male", "female", "unknown")),
        "child_age_group": rng.choice(("0-5", "6-10", "11-15")), "child_id": child_id(linked),
        "abuse_forms": rng.sample(FORMS, 1 + (rng.random() < 0.2)) if category == "abused" else [],
        "environment": rng.choice(ENVIRONMENTS),
        "state": "closed" if closed else "implementing", "emergency": emergency,
        "closure_reason": "safe_and_stable" if closed else None, "closed_at": closed and closed.isoformat(),
        "deadlines": deadlines,
    }


def event(seq: int, type: str, source: str, occurred_at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "id": f"e{1 if source == 'registry' else 2}000000-0000-4000-8000-{seq:012x}", "type": type,
            "version": 1, "occurred_at": occurred_at.isoformat(), "agency": "peoples_committee", "source": source,
            "payload": payload}


class Feeds:
    def __init__(self, children: int, cases: int):
        self.children, self.cases = children, cases
        self.appended: list[dict[str, Any]] = []
        self.revisions: dict[int, int] = {}
        self.appended_cases: list[dict[str, Any]] = []
        self.case_revisions: dict[int, int] = {}

    def registry_event(self, seq: int) -> dict[str, Any]:
        if seq > self.children:
            return self.appended[seq - self.children - 1]
        occurred = START + timedelta(seconds=SPAN_SECONDS * (seq - 1) / self.children)
        return event(seq, "child.registered", "registry", occurred, child_snapshot(seq - 1))

    def cases_event(self, seq: int) -> dict[str, Any]:
        if seq > self.cases:
            return self.appended_cases[seq - self.cases - 1]
        payload = case_snapshot(seq - 1, self.children)
        return event(seq, "case.received", "cases", datetime.fromisoformat(payload["received_at"]), payload)

    def page(self, source: str, after: int, limit: int) -> dict[str, Any]:
        end = (self.children + len(self.appended) if source == "registry"
               else self.cases + len(self.appended_cases))
        last = min(end, after + limit)
        make = self.registry_event if source == "registry" else self.cases_event
        events = [make(seq) for seq in range(after + 1, last + 1)]
        return {"events": events, "next_cursor": last if events else after, "has_more": last < end}

    def append_change(self, province: str) -> int:
        number = next(n for n in range(len(self.revisions), self.children)
                      if communes()[child_commune(n)].province_code == province and n not in self.revisions)
        self.revisions[number] = 2
        snapshot = child_snapshot(number, revision=2)
        seq = self.children + len(self.appended) + 1
        self.appended.append(event(seq, "child.changed", "registry", datetime.now(UTC), snapshot))
        return seq


    def append_case_change(self, province: str) -> int:
        """A later revision of one abuse case of the province, closed as unfounded: its child leaves 0101."""
        number = next(n for n in range(len(self.case_revisions), self.cases)
                      if n not in self.case_revisions
                      and (payload := case_snapshot(n, self.children))["province_code"] == province
                      and payload["category"] == "abused")
        self.case_revisions[number] = 2
        payload = case_snapshot(number, self.children)
        now = datetime.now(UTC)
        payload.update(revision=2, state="closed", closure_reason="unfounded", closure_kind="early",
                       closed_at=now.isoformat())
        seq = self.cases + len(self.appended_cases) + 1
        self.appended_cases.append(event(seq, "case.changed", "cases", now, payload))
        return seq


def build_app(feeds: Feeds, jwk: dict[str, Any]) -> web.Application:
    async def token(_: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench-service-token", "token_type": "bearer", "expires_in": 3600})

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    async def events(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer bench-service-token":
            return web.json_response({"title": "Not authenticated"}, status=401)
        after = int(request.query.get("after", "0"))
        limit = min(int(request.query.get("limit", "500")), 1000)
        body = orjson.dumps(feeds.page(request.match_info["source"], after, limit))
        return web.Response(body=body, content_type="application/json")

    async def append(request: web.Request) -> web.Response:
        province = request.query.get("province", "79")
        if request.match_info["source"] == "cases":
            return web.json_response({"seq": feeds.append_case_change(province)})
        return web.json_response({"seq": feeds.append_change(province)})

    app = web.Application()
    app.router.add_post("/auth/token", token)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/{source}/internal/v1/events", events)
    app.router.add_post("/{source}/append", append)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--jwk", required=True, help="the public JWK that signs the benchmark's user tokens")
    args = parser.parse_args()
    web.run_app(build_app(Feeds(args.children, args.cases), json.loads(args.jwk)), host="127.0.0.1",
                port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
