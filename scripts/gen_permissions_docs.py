"""Write docs/permissions.md from the permission table: `python -m scripts.gen_permissions_docs`.

A test checks that the committed file equals what this produces, so the docs cannot drift from the code.
"""

import sys
from typing import Any

from scripts.stack import ROOT
from services.common.permissions import (
    PERMISSIONS,
    ROLE_JURISDICTION_LEVELS,
    Action,
    Role,
    Scope,
    allowed_agencies,
)

TARGET = ROOT / "docs" / "permissions.md"
SCOPE_TEXT = {
    Scope.JURISDICTION: "objects located in the user's jurisdiction",
    Scope.INVOLVED: "only objects that involve the user's agency (a task or referral), only the fields its part needs",
    Scope.OWN: "only objects the user created",
    Scope.MATCH: "only to find a child to attach to a report: exact criteria, minimal fields, no browsing",
    Scope.SUMMARY: "objects in the user's jurisdiction as summaries: no reporter, no child's name or place, no free "
                   "text (oversight)",
}


def route_permissions() -> list[tuple[str, str, str, tuple[Action, ...]]]:
    """(service, method, path, action) for every documented route, read from each app's OpenAPI document, where
    `require(action)` records the action as the security scope of the route."""
    from gateway.app import create_app as gateway_app
    from services.cases.app import create_app as cases_app
    from services.registry.app import create_app as registry_app
    from services.reporting.app import create_app as reporting_app

    rows = []
    for service, factory in (("gateway", gateway_app), ("registry", registry_app), ("cases", cases_app),
                             ("reporting", reporting_app)):
        document: dict[str, Any] = factory().openapi()
        prefix = "" if service == "gateway" else f"/{service}"
        for path, item in document["paths"].items():
            for method, operation in item.items():
                scopes = [scope for requirement in operation.get("security", []) for scope in
                          next(iter(requirement.values()), [])]
                rows.append((service, method.upper(), prefix + path, tuple(Action(scope) for scope in scopes)))
    return rows


def render() -> str:
    roles = list(Role)
    lines = [
        "# Permissions",
        "",
        "Generated from `services/common/permissions.py` by `python -m scripts.gen_permissions_docs`; do not edit.",
        "",
        "Each cell is the scope within which a role may take an action; an empty cell means never (403).",
        "An object outside the scope answers 404, so its existence does not leak.",
        "",
        "## Scopes",
        "",
        *[f"- **{scope.value}**: {SCOPE_TEXT[scope]}" for scope in Scope],
        "",
        "## Roles",
        "",
        "| role | agencies (the first is the default) | jurisdiction levels |",
        "|---|---|---|",
        *[f"| `{role.value}` | {', '.join(a.value for a in allowed_agencies(role))} | "
          f"{', '.join(ROLE_JURISDICTION_LEVELS[role])} |"
          for role in roles],
        "",
        "Service accounts (`service`) are further limited to the scopes of their OAuth2 client.",
        "",
        "## Matrix",
        "",
        "| action | " + " | ".join(f"`{role.value}`" for role in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for action in Action:
        cells = [PERMISSIONS[role].get(action) for role in roles]
        lines.append(f"| `{action.value}` | " + " | ".join(c.value if c else "" for c in cells) + " |")
    lines += ["", "## Routes", "", "Paths as seen through the gateway. Routes without an action need no token, or "
              "only a valid one.", "", "| service | method | path | action | reached |", "|---|---|---|---|---|"]
    for service, method, path, actions in route_permissions():
        shown = " or ".join(f"`{action.value}`" for action in actions)
        where = "direct, between services" if "/internal/" in path else "through the gateway"
        lines.append(f"| {service} | {method} | `{path}` | {shown} | {where} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
