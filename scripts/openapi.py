"""The combined OpenAPI document the gateway serves at /openapi.json, built from the code without starting anything:

    .venv/bin/python -m scripts.openapi > openapi.json

A frontend team can generate a client from it offline (docs/clients.md). Conflicts in the document (a model name
two services use for different shapes, an operationId two routes share) are printed to stderr and make the command
exit 1; the contract tests run it.
"""

import json
import logging
import sys
from typing import Any

from gateway.openapi import Combined, combine


def service_documents() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    from gateway.app import create_app as gateway_app
    from gateway.routes import SERVICES
    from services.cases.app import create_app as cases_app
    from services.registry.app import create_app as registry_app
    from services.reporting.app import create_app as reporting_app

    apps = {"registry": registry_app, "cases": cases_app, "reporting": reporting_app}
    assert set(apps) == set(SERVICES), "every service the gateway publishes has its document here"
    return gateway_app().openapi(), {name: apps[name]().openapi() for name in SERVICES}


def combined_document() -> Combined:
    gateway_doc, service_docs = service_documents()
    return combine(gateway_doc, service_docs)


def main() -> int:
    logging.disable(logging.CRITICAL)  # building the apps configures logging; this command prints only the document
    combined = combined_document()
    json.dump(combined.document, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    for conflict in combined.conflicts:
        print(f"conflict: {conflict}", file=sys.stderr)
    return 1 if combined.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
