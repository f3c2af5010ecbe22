"""Validation of one rendered object: Kubernetes' own kinds with kubernetes-validate, custom
resources (Strimzi, KEDA, prometheus-operator) with jsonschema against their CRD's openAPIV3Schema.

Both are strict: a field the schema does not know is an error, as ``kubectl apply
--validate=strict`` makes it (the API server would otherwise drop it silently).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate

#: The Kubernetes version the manifests are validated for (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.32.0"


def is_builtin(api_version: str) -> bool:
    """Kinds of Kubernetes itself: core (``v1``) and groups without a dot or under ``k8s.io``."""
    if "/" not in api_version:
        return True
    group = api_version.split("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a CRD schema in which objects with listed properties accept no other field, except
    where the CRD says ``x-kubernetes-preserve-unknown-fields`` (free-form maps such as Kafka configs)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def validate_object(obj: dict[str, Any], crd_schemas: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Validate ``obj``; return what it was checked against; raise AssertionError naming the error."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if is_builtin(obj["apiVersion"]):
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise AssertionError(f"{name}: {path}: {exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise AssertionError(f"{name}: {exc.message}") from None
        return f"Kubernetes {KUBERNETES_VERSION}"
    schema = crd_schemas.get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        raise AssertionError(f"{name}: no CRD schema for {obj['apiVersion']} {obj['kind']}")
    errors = sorted(jsonschema.Draft7Validator(strict(schema)).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        raise AssertionError("; ".join(f"{name}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
    return f"CRD {obj['apiVersion']} {obj['kind']}"
