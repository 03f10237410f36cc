"""Demo data for the run command: a few children in the demo commune, and one report of each category of
Decree 56 (an abused child, a child at risk, a child in special circumstances), created through the public API."""

import httpx

REPORTS = [
    ("demo-report-abused", {
        "category": "abused", "channel": "phone", "incident_commune_code": "00070",
        "child": {"first_name": "An", "approximate_age": 10, "sex": "male"},
        "abuse_forms": ["violence"], "environment": "home", "perpetrator_relationship": "step_parent",
        "description": "A neighbour hears the boy being beaten most evenings.",
        "danger_indicators": ["abuser_has_access"]}),
    ("demo-report-at-risk", {
        "category": "at_risk", "channel": "through_another_person", "incident_commune_code": "00070",
        "child": {"first_name": "Bình", "approximate_age": 6, "sex": "female"},
        "risk_forms": ["abandonment"], "description": "The girl is often left alone for days while her mother works."}),
    ("demo-report-special", {
        "category": "special_circumstances", "channel": "in_person", "incident_commune_code": "00070",
        "child": {"first_name": "Cường", "approximate_age": 12, "sex": "male"},
        "special_groups": ["a"], "description": "Both parents died last year; the grandmother is very ill."}),
]


def token(gateway: str, username: str) -> str:
    response = httpx.post(f"{gateway}/auth/token",
                          data={"grant_type": "password", "username": username, "password": "demo"})
    response.raise_for_status()
    return str(response.json()["access_token"])


def seed(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {token(gateway, 'demo-child_protection_officer')}"}
    children = [
        {"full_name": "Nguyễn Văn An", "sex": "male", "date_of_birth": "2015-03-02", "commune_code": "00070"},
        {"full_name": "Trần Thị Bình", "sex": "female", "date_of_birth": "2018-11-20", "commune_code": "00070"},
    ]
    for child in children:
        httpx.post(f"{gateway}/registry/v1/children", json=child, headers=headers).raise_for_status()
    hotline = {"Authorization": f"Bearer {token(gateway, 'demo-hotline_operator')}"}
    for key, report in REPORTS:  # the Idempotency-Key makes a second run find the same reports
        httpx.post(f"{gateway}/cases/v1/cases", json=report,
                   headers=hotline | {"Idempotency-Key": key}).raise_for_status()
