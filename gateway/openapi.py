"""One OpenAPI document for the whole system: the gateway's own routes plus every service's, under its prefix."""

import re
from typing import Any

import httpx

from services.common.logging import get_logger

logger = get_logger("openapi")
_REF = re.compile(r"#/components/schemas/([A-Za-z0-9_.\-]+)")


def _prefix_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {k: (_REF.sub(lambda m: f"#/components/schemas/{prefix}{m.group(1)}", v) if k == "$ref" and
                    isinstance(v, str) else _prefix_refs(v, prefix)) for k, v in node.items()}
    if isinstance(node, list):
        return [_prefix_refs(item, prefix) for item in node]
    return node


def merge(gateway_doc: dict[str, Any], service_docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = dict(gateway_doc)
    paths = dict(gateway_doc.get("paths", {}))
    components = dict(gateway_doc.get("components", {}))
    schemas = dict(components.get("schemas", {}))
    security_schemes = dict(components.get("securitySchemes", {}))
    for service, doc in service_docs.items():
        prefix = f"{service.capitalize()}_"
        doc = _prefix_refs(doc, prefix)
        for path, item in doc.get("paths", {}).items():
            if path.startswith("/internal/"):
                continue  # calls between services never pass through the gateway
            for operation in item.values():
                if isinstance(operation, dict):
                    operation["tags"] = [f"{service}: {t}" for t in operation.get("tags", ["default"])]
                    if "operationId" in operation:
                        operation["operationId"] = f"{service}_{operation['operationId']}"
            paths[f"/{service}{path}"] = item
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            schemas[f"{prefix}{name}"] = schema
        security_schemes.update(doc.get("components", {}).get("securitySchemes", {}))
    components["schemas"] = schemas
    if security_schemes:
        components["securitySchemes"] = security_schemes
    merged["paths"] = paths
    merged["components"] = components
    return merged


async def fetch_service_docs(client: httpx.AsyncClient, upstreams: dict[str, str]) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for service, url in upstreams.items():
        try:
            response = await client.get(f"{url}/openapi.json", timeout=3.0)
            response.raise_for_status()
            docs[service] = response.json()
        except httpx.HTTPError as exc:
            logger.warning("service openapi unavailable", extra={"upstream": service,
                                                                   "error_type": type(exc).__name__})
    return docs
