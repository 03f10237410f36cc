"""deploy/k8s: every manifest of the kustomize base valid against the Kubernetes schema, consistent with the
settings the code reads, secrets only by reference, and a network policy that lets through exactly the calls the
services make."""

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploy.services import SERVICES
from scripts.stack import SERVICE_SCOPES
from tests.deploy.support import (
    K8S,
    KUSTOMIZATION,
    NAMESPACE,
    NON_SETTINGS,
    OBJECTS,
    REFERENCE,
    RESOURCES,
    container,
    fields,
    foreign_settings,
    load_yaml_documents,
    objects,
    pod_spec,
    url_fields,
    variables,
)

# A recent release whose schema kubernetes-validate ships; strict mode also refuses unknown (misspelt) fields.
K8S_VERSION = "1.34.0"
AUTOSCALED = {"gateway", "registry", "cases"}
SECRET_WORDS = ("SECRET", "PASSWORD", "DATABASE_URL", "CLIENTS_JSON", "TOKEN", "PRIVATE")


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate as module
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate")
    return module


def test_the_base_lists_every_manifest_and_not_the_postgres_example() -> None:
    assert all(path.is_file() for path in RESOURCES)
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == {p.name for p in RESOURCES}, "a manifest is missing from kustomization.yaml"
    assert not any("postgres-example" in name for name in KUSTOMIZATION["resources"])


@pytest.mark.parametrize("path", RESOURCES, ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    validator = kubernetes_validate()
    for doc in load_yaml_documents(path):
        try:
            validator.validate(doc, K8S_VERSION, strict=True)
        except validator.ValidationError as error:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {error.message} at "
                        f"{'/'.join(str(p) for p in error.path)}")


def test_everything_lives_in_the_namespace_and_no_secret_is_in_the_base() -> None:
    for path, doc in OBJECTS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{path.name} {doc['metadata']['name']}"
        assert doc["kind"] != "Secret", f"{path.name}: Secrets are created outside git, only referenced"
    assert objects("Namespace")[NAMESPACE]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [*objects("Deployment").items(), *objects("Job").items()]


@pytest.mark.parametrize("name", [name for name, _ in workloads()])
def test_every_pod_is_locked_down(name: str) -> None:
    workload = dict(workloads())[name]
    spec = pod_spec(workload)
    assert spec["automountServiceAccountToken"] is False
    # Service links would inject REGISTRY_PORT=tcp://... for Service "registry": our settings' own names.
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (image,) = KUSTOMIZATION["images"]
    for each in [*spec.get("initContainers", []), *spec["containers"]]:
        security = each["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True and security["runAsUser"] >= 10000
        assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
        assert security.get("privileged", False) is False
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(each["resources"][kind]), f"{name}/{each['name']}: {kind}"
        # The image is the one the kustomization pins, by name.
        assert each["image"].split(":")[0].split("@")[0] == image["name"]
        # /tmp is the only writable place (the root filesystem is read-only).
        assert [m["mountPath"] for m in each["volumeMounts"]] == ["/tmp"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_runs_with_probes_a_service_and_a_disruption_budget(name: str) -> None:
    deployment = objects("Deployment")[name]
    main = container(deployment)
    assert main["command"] == ["python", "-m", "deploy.serve", name]
    (port,) = main["ports"]
    assert port["containerPort"] == SERVICES[name].port and port["name"] == "http"
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    service = objects("Service")[name]
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == SERVICES[name].port and service_port["targetPort"] == "http"

    budgets = [b for b in objects("PodDisruptionBudget").values()
               if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert len(budgets) == 1, f"{name}: one PodDisruptionBudget"
    autoscaler = objects("HorizontalPodAutoscaler").get(name)
    least = autoscaler["spec"]["minReplicas"] if autoscaler else deployment["spec"]["replicas"]
    assert budgets[0]["spec"]["minAvailable"] < least, "a node drain must be able to evict one pod"


@pytest.mark.parametrize("name", list(SERVICES))
def test_stateless_services_autoscale_and_reporting_runs_a_fixed_count(name: str) -> None:
    deployment = objects("Deployment")[name]
    autoscaler = objects("HorizontalPodAutoscaler").get(name)
    if name in AUTOSCALED:
        assert autoscaler is not None
        assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
        assert "replicas" not in deployment["spec"], "the autoscaler owns the count; apply would reset it"
    else:
        assert autoscaler is None
        assert deployment["spec"]["replicas"] >= 1


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_starts_only_once_its_database_is_at_head(name: str) -> None:
    (init,) = pod_spec(objects("Deployment")[name])["initContainers"]
    assert init["command"][:4] == ["python", "-m", "deploy.migrate", "--await-head"]
    assert init["command"][-1] == name
    (variable,) = init["env"]
    assert variable["name"] == f"{SERVICES[name].env_prefix}DATABASE_URL"
    assert variable["valueFrom"]["secretKeyRef"] == {"name": f"{name}-secrets", "key": "database-url"}


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_gets_only_settings_its_code_reads(name: str) -> None:
    service = SERVICES[name]
    env = variables(objects("Deployment")[name])
    names = [key for key, _ in env]
    assert len(names) == len(set(names)), f"{name}: a variable is set twice"
    # Helpers only feed $(NAME) in a later value; they must come from a Secret and be defined before their use.
    helpers: set[str] = set()
    for index, (key, variable) in enumerate(env):
        for ref in REFERENCE.findall(variable.value or ""):
            defined = dict(env[:index])
            assert ref in defined, f"{name}: $({ref}) in {key} is not defined above it"
            assert defined[ref].secret is not None, f"{name}: $({ref}) should come from a Secret"
            helpers.add(ref)
    settings = set(names) - helpers
    assert not foreign_settings(service, settings), f"{name}: not read by {service.settings_class}"
    unknown = {key for key in settings if key not in fields(service) and key not in NON_SETTINGS}
    assert not unknown, f"{name}: variables no settings class reads: {unknown}"
    assert not [h for h in helpers if h.startswith(tuple(s.env_prefix for s in SERVICES.values()))], \
        "helper names must not look like settings"


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_gets_what_a_deployment_must_set(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = SERVICES[name]
    p = service.env_prefix
    env = dict(variables(objects("Deployment")[name]))
    gateway = dict(variables(objects("Deployment")["gateway"]))
    required = {f"{p}ENVIRONMENT", f"{p}HOST", f"{p}PORT", f"{p}DATABASE_URL", f"{p}JWT_ISSUER",
                f"{p}TRUSTED_ISSUERS_JSON", "CP_SERVICE"} | url_fields(service)
    assert required <= set(env), f"{name}: missing {required - set(env)}"
    assert env["CP_SERVICE"].value == name
    assert env[f"{p}ENVIRONMENT"].value == "production"
    assert env[f"{p}HOST"].value == "0.0.0.0"
    assert int(env[f"{p}PORT"].value or 0) == service.port
    assert env[f"{p}DATABASE_URL"].secret == (f"{name}-secrets", "database-url")
    assert env[f"{p}JWT_ISSUER"].value == gateway["GATEWAY_PUBLIC_URL"].value
    # Stores outside the base (PostgreSQL, the gateways' shared Redis) are the overlay's to name.
    for key in url_fields(service) - {f"{p}DATABASE_URL", "GATEWAY_PUBLIC_URL", "GATEWAY_REDIS_URL"}:
        url = urlsplit(env[key].value or "")
        target = objects("Service").get(url.hostname or "")
        assert target is not None, f"{name}: {key} names no Service of the base"
        assert url.port == target["spec"]["ports"][0]["port"], key
    # The settings class reads the result as the container would (secrets replaced by stand-ins).
    for key in [k for k in os.environ if k.startswith(p)]:
        monkeypatch.delenv(key)
    for key, variable in env.items():
        monkeypatch.setenv(key, variable.value if variable.value is not None else f"stand-in-{variable.secret}")
    assert service.settings_type()().environment == "production"


def test_service_accounts_match_between_the_gateway_and_each_service() -> None:
    gateway = variables(objects("Deployment")["gateway"])
    by_name = dict(gateway)
    clients = json.loads(by_name["GATEWAY_SERVICE_CLIENTS_JSON"].value or "")
    assert {client: c["scopes"] for client, c in clients.items()} == SERVICE_SCOPES
    for client, config in clients.items():
        (ref,) = REFERENCE.fullmatch(config["secret"]).groups()  # type: ignore[union-attr]
        own = dict(variables(objects("Deployment")[client]))
        p = SERVICES[client].env_prefix
        assert own[f"{p}SERVICE_CLIENT_ID"].value == client
        assert by_name[ref].secret == own[f"{p}SERVICE_CLIENT_SECRET"].secret == (f"{client}-secrets",
                                                                                  "client-secret")


def test_secrets_come_only_by_reference() -> None:
    for name, workload in workloads():
        for key, variable in variables(workload):
            if key.endswith(("SECRET", "PASSWORD", "DATABASE_URL", "TOKEN")):
                assert variable.secret is not None, f"{name}: {key} must come from a Secret"
            if key.endswith("CLIENTS_JSON"):
                for client in json.loads(variable.value or "").values():
                    assert REFERENCE.fullmatch(client["secret"]), f"{name}: {key} holds a literal secret"
    for configmap in objects("ConfigMap").values():
        for key in configmap["data"]:
            assert not any(word in key for word in SECRET_WORDS), f"{key} belongs in a Secret"


def test_the_migration_job_upgrades_every_database_from_the_secrets() -> None:
    (job,) = objects("Job").values()
    main = container(job)
    assert main["command"][:3] == ["python", "-m", "deploy.migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0
    env = dict(variables(job))
    assert set(env) == {f"{s.env_prefix}DATABASE_URL" for s in SERVICES.values()}
    for service in SERVICES.values():
        assert env[f"{service.env_prefix}DATABASE_URL"].secret == (f"{service.name}-secrets", "database-url")


def test_checkov_skips_carry_a_reason() -> None:
    for path, doc in OBJECTS:
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), value
                assert len(reason.split()) >= 5, f"{path.name}: {check} skipped without a reason"


def test_the_gateway_never_believes_a_client_written_forwarded_for() -> None:
    # "*" makes uvicorn take the left-most X-Forwarded-For entry, which the client writes.
    trusted = dict(variables(objects("Deployment")["gateway"]))["FORWARDED_ALLOW_IPS"].value
    assert trusted and "*" not in trusted
    for name in set(SERVICES) - {"gateway"}:
        assert "FORWARDED_ALLOW_IPS" not in dict(variables(objects("Deployment")[name]))
