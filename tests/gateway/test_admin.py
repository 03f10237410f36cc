"""User administration: create, change role or jurisdiction, deactivate; every change audited."""

import asyncpg

from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, OTHER_COMMUNE, OTHER_PROVINCE, Api


async def admin_audit(api: Api, user_id: str) -> list[str]:
    connection = await asyncpg.connect(api.stack.database_url("gateway").replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch("SELECT action FROM admin_audit_entry WHERE target_id = $1 ORDER BY at", user_id)
    finally:
        await connection.close()
    return [row["action"] for row in rows]


async def test_admin_creates_changes_and_deactivates_a_user(api: Api) -> None:
    admin = await api.as_demo("admin")
    created = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": "officer.tran", "password": "a-long-password-1", "display_name": "Tran Van Officer",
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["agency"] == "peoples_committee" and user["jurisdiction"]["province"] == DEMO_PROVINCE
    assert "password" not in str(user).lower()

    login = await api.client.post("/auth/token", data={"grant_type": "password", "username": "officer.tran",
                                                       "password": "a-long-password-1"})
    assert login.status_code == 200
    refresh_token = login.json()["refresh_token"]

    moved = await api.client.patch(f"/admin/v1/users/{user['id']}", headers=admin, json={
        "role": "police_officer", "jurisdiction": {"level": "province", "province": OTHER_PROVINCE}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["agency"] == "police" and moved.json()["jurisdiction"]["province"] == OTHER_PROVINCE

    deactivated = await api.client.patch(f"/admin/v1/users/{user['id']}", headers=admin, json={"active": False})
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    assert (await api.client.post("/auth/token", data={"grant_type": "password", "username": "officer.tran",
                                                       "password": "a-long-password-1"})).status_code == 401
    assert (await api.client.post("/auth/refresh", json={"refresh_token": refresh_token})).status_code == 401
    assert await admin_audit(api, user["id"]) == ["user.create", "user.update", "user.update"]


async def test_role_must_fit_the_jurisdiction_level(api: Api) -> None:
    admin = await api.as_demo("admin")
    commune_level_hotline = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": "hotline.wrong", "password": "a-long-password-1", "display_name": "X",
        "role": "hotline_operator", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert commune_level_hotline.status_code == 422
    unknown_commune = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": "officer.wrong", "password": "a-long-password-1", "display_name": "X",
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": "99999"}})
    assert unknown_commune.status_code == 422
    service = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": "svc.wrong", "password": "a-long-password-1", "display_name": "X",
        "role": "service", "jurisdiction": {"level": "national"}})
    assert service.status_code == 422
    mass_assignment = await api.client.patch(f"/admin/v1/users/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=admin,
                                             json={"password_hash": "x", "failed_logins": 0})
    assert mass_assignment.status_code == 422


async def test_province_admin_sees_only_its_province(api: Api) -> None:
    province_admin = await api.province_user("admin", OTHER_PROVINCE)
    outsider = (await api.client.get("/admin/v1/users", headers=await api.as_demo("admin"))).json()["items"]
    demo_officer = next(u for u in outsider if u["username"] == "demo-child_protection_officer")
    assert (await api.client.get(f"/admin/v1/users/{demo_officer['id']}", headers=province_admin)).status_code == 404
    listed = (await api.client.get("/admin/v1/users", headers=province_admin)).json()["items"]
    assert all(u["jurisdiction"]["province"] == OTHER_PROVINCE for u in listed)
    created = await api.client.post("/admin/v1/users", headers=province_admin, json={
        "username": "bacninh.officer", "password": "a-long-password-1", "display_name": "X",
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert created.status_code == 404
    inside = await api.client.post("/admin/v1/users", headers=province_admin, json={
        "username": "bacninh.officer", "password": "a-long-password-1", "display_name": "X",
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": OTHER_COMMUNE}})
    assert inside.status_code == 201


async def test_non_admins_cannot_administer(api: Api) -> None:
    for role in ("child_protection_officer", "province_statistician", "hotline_operator"):
        response = await api.client.get("/admin/v1/users", headers=await api.as_demo(role))
        assert response.status_code == 403
