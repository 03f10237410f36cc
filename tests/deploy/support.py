"""What the deployment tests share: paths, the settings each service reads, and compose-style interpolation."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.services import SERVICES, Service
from scripts.stack import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"

# Variables a container may carry that are not settings fields: which service it is (deploy/services.py) and
# uvicorn's trusted proxies.
NON_SETTINGS = {"CP_SERVICE", "FORWARDED_ALLOW_IPS"}

# Where each service reaches the others, by the name of the setting (gateway's REGISTRY_URL -> registry).
UPSTREAM_SETTINGS = {"registry_url": "registry", "cases_url": "cases", "reporting_url": "reporting",
                     "gateway_url": "gateway"}


def fields(service: Service) -> set[str]:
    """The env variable names the service's settings class reads."""
    return {f"{service.env_prefix}{name.upper()}" for name in service.settings_type().model_fields}


def url_fields(service: Service) -> set[str]:
    return {f"{service.env_prefix}{name.upper()}" for name in service.settings_type().model_fields
            if name.endswith("_url")}


def foreign_settings(service: Service, names: set[str]) -> set[str]:
    """Names with another service's prefix, or with this prefix that its settings class does not read."""
    mine = fields(service)
    other_prefixes = tuple(s.env_prefix for s in SERVICES.values() if s is not service)
    return {n for n in names if (n.startswith(service.env_prefix) and n not in mine)
            or (n.startswith(other_prefixes) and not n.startswith(service.env_prefix))}


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        values[key.strip()] = value.strip()
    return values


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:\?|:-|\?|-)(?P<arg>[^}]*))?\}")


def referenced_variables(text: str) -> set[str]:
    return {m["name"] for m in _VARIABLE.finditer(text)}


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`; a missing required variable raises KeyError."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = environ.get(name)
        if present:
            return present
        if op in (":-", "-"):
            return arg
        raise KeyError(name)

    return _VARIABLE.sub(substitute, value)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# The kustomize base, as Kubernetes would read it.
KUSTOMIZATION: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
NAMESPACE: str = KUSTOMIZATION["namespace"]
RESOURCES = [K8S / name for name in KUSTOMIZATION["resources"]]
OBJECTS = [(path, doc) for path in RESOURCES for doc in load_yaml_documents(path)]
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in OBJECTS if doc["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


@dataclass(frozen=True)
class Variable:
    value: str | None  # literal, from a ConfigMap or `value`
    secret: tuple[str, str] | None  # (Secret name, key) of a secretKeyRef


def variables(workload: dict[str, Any]) -> list[tuple[str, Variable]]:
    """The container's environment in the order Kubernetes builds it: envFrom ConfigMaps first, then env."""
    configmaps = objects("ConfigMap")
    result: list[tuple[str, Variable]] = []
    spec = container(workload)
    for source in spec.get("envFrom", []):
        data = configmaps[source["configMapRef"]["name"]]["data"]
        result += [(key, Variable(str(value), None)) for key, value in data.items()]
    for item in spec.get("env", []):
        if "value" in item:
            result.append((item["name"], Variable(str(item["value"]), None)))
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            result.append((item["name"], Variable(None, (ref["name"], ref["key"]))))
    return result
