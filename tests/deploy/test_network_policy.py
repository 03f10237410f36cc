"""The NetworkPolicies of the base, evaluated as Kubernetes would: every call the services make (read from the
addresses in their configuration) gets through, and nothing else does; from outside, only the gateway answers,
and only to the ingress controller."""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploy.services import SERVICES
from tests.deploy.support import K8S, NAMESPACE, OBJECTS, load_yaml_documents, objects, variables

POLICIES = [doc for _, doc in OBJECTS if doc["kind"] == "NetworkPolicy"]
POSTGRES_PORT = 5432
DNS_PORT = 53


@dataclass(frozen=True)
class Endpoint:
    """A pod (in or out of the namespace) or an address outside the cluster (`pod_labels` None)."""

    name: str
    namespace: str | None
    pod_labels: dict[str, str] | None
    namespace_labels: dict[str, str] = field(default_factory=dict)


def pod(workload: dict[str, Any]) -> Endpoint:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return Endpoint(workload["metadata"]["name"], NAMESPACE, labels,
                    {"kubernetes.io/metadata.name": NAMESPACE})


PODS = {name: pod(w) for name, w in [*objects("Deployment").items(), *objects("Job").items()]}
INGRESS_CONTROLLER = Endpoint("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"},
                              {"kubernetes.io/metadata.name": "ingress-nginx"})
OTHER_POD = Endpoint("pod-in-another-namespace", "default", {"app": "anything"},
                     {"kubernetes.io/metadata.name": "default"})
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"},
                     {"kubernetes.io/metadata.name": "monitoring"})
KUBE_DNS = Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
POSTGRES = Endpoint("postgres", None, None)  # a managed server or a cluster elsewhere: an address


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] in ("In", "NotIn"), "extend the evaluator for this operator"
        inside = labels.get(expression["key"]) in expression["values"]
        if inside != (expression["operator"] == "In"):
            return False
    return True


def peer_matches(peer: dict[str, Any], other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.pod_labels is None  # only addresses outside the cluster are written as blocks here
    if other.pod_labels is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.pod_labels)


def rule_allows(rule: dict[str, Any], peers_key: str, other: Endpoint, port: int) -> bool:
    peers = rule.get(peers_key)
    if peers is not None and not any(peer_matches(peer, other) for peer in peers):
        return False
    ports = rule.get("ports")
    return ports is None or any(p.get("port") in (None, port) for p in ports)


def allowed(direction: str, subject: Endpoint, other: Endpoint, port: int) -> bool:
    """Whether `subject` may send (Egress) to, or receive (Ingress) from, `other` on `port`."""
    if subject.namespace != NAMESPACE or subject.pod_labels is None:
        return True  # no policy of ours governs it
    kind, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    governing = [p for p in POLICIES
                 if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject.pod_labels)]
    if not governing:
        return True
    return any(rule_allows(rule, peers_key, other, port) for p in governing for rule in p["spec"].get(kind, []))


def reaches(source: Endpoint, target: Endpoint, port: int) -> bool:
    return allowed("Egress", source, target, port) and allowed("Ingress", target, source, port)


def calls() -> set[tuple[str, str, int]]:
    """(caller, callee, port) from the addresses each service is configured with."""
    found = set()
    for name in SERVICES:
        for key, variable in variables(objects("Deployment")[name]):
            if key.endswith("_URL") and variable.value and variable.value.startswith("http://"):
                url = urlsplit(variable.value)
                if url.hostname in SERVICES:
                    found.add((name, url.hostname, int(url.port or 80)))
    return found


def test_the_namespace_denies_by_default() -> None:
    defaults = [p for p in POLICIES if p["spec"]["podSelector"] == {}
                and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert defaults, "a default-deny policy for every pod"


def test_the_calls_read_from_the_configuration_are_the_expected_ones() -> None:
    # A sanity check of the evaluator's input: the call graph of the system.
    assert calls() >= {("gateway", "registry", 8001), ("gateway", "cases", 8002), ("gateway", "reporting", 8003),
                       ("cases", "registry", 8001), ("reporting", "registry", 8001), ("reporting", "cases", 8002),
                       ("registry", "gateway", 8000), ("cases", "gateway", 8000), ("reporting", "gateway", 8000)}


def test_every_configured_call_gets_through() -> None:
    for caller, callee, port in calls():
        assert reaches(PODS[caller], PODS[callee], port), f"{caller} cannot reach {callee}:{port}"


def test_no_other_call_between_pods_gets_through() -> None:
    wanted = calls()
    for source in PODS.values():
        for target in PODS.values():
            for port in {s.port for s in SERVICES.values()}:
                if (source.name, target.name, port) not in wanted:
                    assert not reaches(source, target, port), f"{source.name} reaches {target.name}:{port}"


@pytest.mark.parametrize("name", list(PODS))
def test_every_pod_reaches_postgres_and_dns(name: str) -> None:
    assert reaches(PODS[name], POSTGRES, POSTGRES_PORT)
    assert reaches(PODS[name], KUBE_DNS, DNS_PORT)


def test_from_outside_only_the_gateway_answers_and_only_to_the_ingress_controller() -> None:
    for name, target in PODS.items():
        for port in {s.port for s in SERVICES.values()} | {POSTGRES_PORT}:
            assert not reaches(OTHER_POD, target, port), f"another namespace reaches {name}:{port}"
            expected = name == "gateway" and port == SERVICES["gateway"].port
            assert reaches(INGRESS_CONTROLLER, target, port) == expected, f"ingress controller -> {name}:{port}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_prometheus_scrapes_each_service_and_nothing_else(name: str) -> None:
    assert reaches(PROMETHEUS, PODS[name], SERVICES[name].port)
    assert not reaches(PROMETHEUS, PODS[name], POSTGRES_PORT)
    assert not reaches(PROMETHEUS, PODS["migrate"], SERVICES[name].port)


def test_the_postgres_example_is_not_in_the_base() -> None:
    kinds = {doc["kind"] for doc in load_yaml_documents(K8S / "postgres-example" / "cluster.yaml")}
    assert {"Cluster", "Database", "ScheduledBackup"} <= kinds
    assert not any(doc["kind"] in kinds - {"Namespace"} for _, doc in OBJECTS)
