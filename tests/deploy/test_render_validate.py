"""Every overlay renders with kustomize, and every object in it passes its schema: Kubernetes'
(kubernetes-validate) or its CRD's (Strimzi, KEDA, prometheus-operator, from the set-up)."""

from __future__ import annotations

import copy

import pytest
from k8s_render import RENDERED
from schema_check import validate_object


@pytest.mark.parametrize("overlay", RENDERED)
def test_every_object_passes_its_schema(overlay, rendered, crd_schemas):
    objects = rendered[overlay]
    failures, checked = [], {}
    for obj in objects:
        try:
            against = validate_object(obj, crd_schemas)
        except AssertionError as exc:
            failures.append(str(exc))
            continue
        checked[against] = checked.get(against, 0) + 1
    assert not failures, "\n".join(failures)
    assert sum(checked.values()) == len(objects)
    kinds = {o["kind"] for o in objects}
    if overlay.startswith("ops/"):
        return
    assert {"Deployment", "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "ScaledObject", "TriggerAuthentication",
            "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget", "Ingress", "Job"} <= kinds


def _first(objects, kind):
    return copy.deepcopy(next(o for o in objects if o["kind"] == kind))


# Each case breaks one object the way a typo would; the validators must say no, or they check nothing.
BROKEN = [
    ("Deployment", lambda o: o["spec"].__setitem__("replicas", "two")),
    ("Deployment", lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"][0].__setitem__("containerPort", "http")),
    ("Deployment", lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("livenessprobe", {})),
    ("NetworkPolicy", lambda o: o["spec"].__setitem__("policyType", ["Ingress"])),
    ("KafkaTopic", lambda o: o["spec"].__setitem__("partitions", "six")),
    ("KafkaUser", lambda o: o["spec"]["authentication"].__setitem__("type", "scram-sha-1")),
    ("KafkaUser", lambda o: o["spec"].__setitem__("authentcation", {"type": "tls"})),
    ("Kafka", lambda o: o["spec"]["kafka"]["listeners"][0].__setitem__("type", "public")),
    ("KafkaNodePool", lambda o: o["spec"].__setitem__("roles", ["leader"])),
    ("ScaledObject", lambda o: o["spec"].pop("scaleTargetRef")),
    ("TriggerAuthentication", lambda o: o["spec"]["secretTargetRef"][0].pop("key")),
    ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].__setitem__("interval", "thirty seconds")),
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("for", "quarter of an hour")),
]


@pytest.mark.parametrize(("kind", "breaks"), BROKEN, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BROKEN)])
def test_a_broken_object_is_refused(kind, breaks, rendered, crd_schemas):
    obj = _first(rendered["prod"], kind)
    validate_object(obj, crd_schemas)  # as rendered it passes ...
    breaks(obj)
    with pytest.raises(AssertionError):  # ... and broken it does not
        validate_object(obj, crd_schemas)
