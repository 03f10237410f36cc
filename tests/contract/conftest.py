"""The combined document as the contract tests read it."""

import httpx

from scripts.stack import SERVICES
from tests.helpers import Api, eventually


async def combined_document(api: Api) -> httpx.Response:
    """The gateway's `/openapi.json` once every service is in it. The gateway leaves out a service whose document
    did not come in time (its first build is slow on a loaded machine) and asks it again on the next request."""
    answers: list[httpx.Response] = []
    prefixes = [f"/{service.name}/" for service in SERVICES if service.name != "gateway"]

    async def complete() -> bool:
        response = await api.client.get("/openapi.json")
        assert response.status_code == 200, response.text
        answers.append(response)
        paths = response.json()["paths"]
        return all(any(path.startswith(prefix) for path in paths) for prefix in prefixes)

    await eventually(complete, timeout=120, interval=2)
    return answers[-1]
