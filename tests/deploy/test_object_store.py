"""The object store in the deployments: SeaweedFS in the compose file and the Kubernetes base, reached by the cases
service only, with its credentials and the master keys by reference, locked down like the services."""

from typing import Any

import yaml

from deploy.services import SERVICES
from tests.deploy.support import COMPOSE_FILE, container, objects, pod_spec, variables
from tests.deploy.test_network_policy import INGRESS_CONTROLLER, OTHER_POD, PODS, pod, reaches

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
S3_PORT = 8333


def test_compose_runs_seaweedfs_for_the_cases_service_only() -> None:
    store = COMPOSE["services"]["seaweedfs"]
    assert store["image"].startswith("chrislusf/seaweedfs:") and store["image"].split(":")[1][0].isdigit()
    assert "ports" not in store and store["restart"] == "unless-stopped"
    assert store["environment"]["AWS_ACCESS_KEY_ID"].startswith("${OBJECT_STORE_ACCESS_KEY:?")
    assert store["environment"]["AWS_SECRET_ACCESS_KEY"].startswith("${OBJECT_STORE_SECRET_KEY:?")
    assert "-s3.ip.bind=0.0.0.0" in store["command"] and "-ip.bind=127.0.0.1" in store["command"]
    assert any(volume.startswith("seaweedfs:") for volume in store["volumes"]) and "seaweedfs" in COMPOSE["volumes"]
    cases = COMPOSE["services"]["cases"]
    assert cases["environment"]["CASES_OBJECT_STORE_URL"] == f"http://seaweedfs:{S3_PORT}"
    assert cases["environment"]["CASES_MASTER_KEYS_JSON"].startswith("${CASES_MASTER_KEYS_JSON:?")
    assert cases["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    for name in set(SERVICES) - {"cases"}:
        assert not any("OBJECT_STORE" in key or "MASTER_KEYS" in key
                       for key in COMPOSE["services"][name].get("environment", {})), name


def test_the_kubernetes_object_store_is_locked_down_and_keeps_its_data() -> None:
    (statefulset,) = objects("StatefulSet").values()
    spec = pod_spec(statefulset)
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    main = container(statefulset)
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {m["mountPath"] for m in main["volumeMounts"]} == {"/data", "/tmp"}
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert main["readinessProbe"] and main["livenessProbe"]
    env = dict(variables(statefulset))
    assert env["AWS_ACCESS_KEY_ID"].secret == ("object-store-secrets", "access-key")
    assert env["AWS_SECRET_ACCESS_KEY"].secret == ("object-store-secrets", "secret-key")
    (port,) = objects("Service")["seaweedfs"]["spec"]["ports"]
    assert port["port"] == S3_PORT


def test_the_cases_service_gets_the_store_and_the_keys_by_reference() -> None:
    env = dict(variables(objects("Deployment")["cases"]))
    assert env["CASES_OBJECT_STORE_URL"].value == f"http://seaweedfs:{S3_PORT}"
    assert env["CASES_OBJECT_STORE_ACCESS_KEY"].secret == ("object-store-secrets", "access-key")
    assert env["CASES_OBJECT_STORE_SECRET_KEY"].secret == ("object-store-secrets", "secret-key")
    assert env["CASES_MASTER_KEYS_JSON"].secret == ("cases-secrets", "master-keys-json")
    for name in set(SERVICES) - {"cases"}:
        assert not any("OBJECT_STORE" in key or "MASTER_KEYS" in key
                       for key, _ in variables(objects("Deployment")[name])), name


def test_only_the_cases_service_reaches_the_store() -> None:
    store = pod(objects("StatefulSet")["seaweedfs"])
    for name, source in PODS.items():
        assert reaches(source, store, S3_PORT) == (name == "cases"), name
    assert not reaches(OTHER_POD, store, S3_PORT)
    assert not reaches(INGRESS_CONTROLLER, store, S3_PORT)
    # The store calls nobody: no service port is open to it.
    for name, target in PODS.items():
        for port in {s.port for s in SERVICES.values()}:
            assert not reaches(store, target, port), (name, port)
