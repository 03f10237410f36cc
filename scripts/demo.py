"""Demo data for the run command: a few children in the demo commune, created through the public API."""

import httpx


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
