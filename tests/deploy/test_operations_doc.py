"""docs/operations.md stays true to the code: every setting is documented, and the files and routes it names exist."""

import re

import pytest

from deploy.services import SERVICES
from scripts.stack import ROOT
from services.common.settings import ServiceSettings

DOC = (ROOT / "docs" / "operations.md").read_text()
# Named in the guide but made by the operator, never committed.
MADE_BY_THE_OPERATOR = {"deploy/.env"}


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_setting_is_documented(name: str) -> None:
    service = SERVICES[name]
    common = set(ServiceSettings.model_fields)
    missing = []
    for field in service.settings_type().model_fields:
        variable = f"{service.env_prefix}{field.upper()}"
        generic = f"<PREFIX>{field.upper()}"
        documented = variable in DOC or (field in common and generic in DOC)
        if not documented:
            missing.append(variable)
    assert not missing, f"add to docs/operations.md, Configuration: {missing}"


def test_every_repository_path_it_names_exists() -> None:
    paths = set(re.findall(r"`((?:deploy|docs|bench|scripts|services|gateway)/[^`\s]*)`", DOC))
    assert paths, "the guide names its files"
    for path in paths - MADE_BY_THE_OPERATOR:
        assert list(ROOT.glob(path.rstrip("/"))), f"docs/operations.md names {path}, which does not exist"


def test_the_key_rotation_route_it_documents_exists() -> None:
    # The router itself: building the app would reconfigure logging for the rest of the test session.
    from gateway.routes import router

    routes = {(method, route.path) for route in router.routes for method in getattr(route, "methods", ())}
    assert ("POST", "/admin/v1/keys/rotate") in routes
    assert ("GET", "/.well-known/jwks.json") in routes
