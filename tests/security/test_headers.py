"""OWASP API8 (security misconfiguration): every answer, of every kind and from every service through the gateway,
carries the security headers once; answers with personal data are never stored by a cache."""

import httpx

from tests.security.conftest import COMMUNE_B, World

REQUIRED = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
            "strict-transport-security": "max-age=31536000; includeSubDomains", "referrer-policy": "no-referrer"}


async def answers(world: World) -> dict[str, tuple[httpx.Response, bool]]:
    """Answers of every kind, each with whether it carries personal data."""
    client, b = world.client, world.b
    case, child = b.case["id"], b.child["id"]
    get = client.get
    return {
        "child (json)": (await get(f"/registry/v1/children/{child}", headers=b.officer), True),
        "child list": (await get("/registry/v1/children", headers=b.officer), True),
        "child history": (await get(f"/registry/v1/children/{child}/history", headers=b.officer), True),
        "export csv": (await get("/registry/v1/children/export", params={"commune_code": COMMUNE_B},
                                 headers=b.officer), True),
        "export xlsx": (await get("/registry/v1/children/export", params={"commune_code": COMMUNE_B,
                                                                          "format": "xlsx"}, headers=b.officer), True),
        "import errors csv": (await get(f"/registry/v1/imports/{b.import_id}/errors", headers=b.officer), True),
        "case": (await get(f"/cases/v1/cases/{case}", headers=b.officer), True),
        "case notes": (await get(f"/cases/v1/cases/{case}/notes", headers=b.officer), True),
        "work list": (await get("/cases/v1/me/work", headers=b.officer), True),
        "who am i": (await get("/auth/me", headers=b.officer), True),
        "report json": (await get("/reporting/v1/reports/2026", headers=world.statistician), False),
        "report csv": (await get("/reporting/v1/reports/2026", params={"format": "csv"},
                                 headers=world.statistician), False),
        "locations": (await get("/registry/v1/locations/provinces", headers=b.officer), False),
        "404 problem": (await get(f"/cases/v1/cases/{world.a.case['id']}", headers=b.officer), False),
        "403 problem": (await get("/cases/v1/cases", headers=world.statistician), False),
        "401 problem": (await get("/registry/v1/children"), False),
        "422 problem": (await client.post("/cases/v1/cases", json={}, headers=b.officer), False),
        "413 problem": (await client.post("/cases/v1/cases", content=b"x" * 1_000_001, headers=b.officer), False),
        "gateway 404": (await get("/nothing/here"), False),
        "openapi": (await get("/openapi.json"), False),
        "health": (await get("/healthz"), False),
    }


async def test_every_answer_carries_the_security_headers_once(world: World) -> None:
    for label, (response, _) in (await answers(world)).items():
        for name, value in REQUIRED.items():
            assert response.headers.get_list(name) == [value], (label, name, response.headers.get_list(name))
        assert response.headers.get_list("cache-control"), label
        assert len(response.headers.get_list("x-request-id")) == 1, label


async def test_personal_data_is_never_cached(world: World) -> None:
    for label, (response, personal) in (await answers(world)).items():
        if personal:
            assert response.status_code == 200, (label, response.status_code)
            assert response.headers["cache-control"] == "no-store", label


async def test_answers_declare_their_type_and_api_answers_forbid_active_content(world: World) -> None:
    for label, (response, _) in (await answers(world)).items():
        assert response.headers["content-type"], label
        if response.headers["content-type"].startswith(("application/json", "application/problem+json", "text/csv")):
            assert "default-src 'none'" in response.headers["content-security-policy"], label
