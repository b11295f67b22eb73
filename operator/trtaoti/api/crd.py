"""Generate the TrtAotiModel CustomResourceDefinition from the pydantic models.

Pydantic emits JSON Schema (with $refs, titles, anyOf-null for optionals); the
apiserver wants a *structural* OpenAPI v3 schema: every node typed, no $ref, no
anyOf for nullability. `structural()` does that translation once, so the models in
`trtaoti.api.models` stay the only place a field is declared.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from trtaoti.api import models as m

_DROPPED_KEYS = {"title"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        # Keep the referring field's own description/default over the target's.
        extras = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extras)
        return _resolve(target, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or key == "$defs":
            continue
        out[key] = _resolve(value, defs)
    return out


def _simplify(node: Any) -> Any:
    """Turn pydantic's idioms into structural-schema idioms."""
    if isinstance(node, list):
        return [_simplify(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _simplify(v) for k, v in node.items()}
    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [s for s in any_of if s.get("type") != "null"]
        types = {s.get("type") for s in non_null}
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(non_null) == 1:
            # Optional[X]: absent means unset; null is not needed on the wire.
            merged = {**non_null[0], **rest}
            node = merged
        elif types == {"string", "integer"}:
            # Quantities: Kubernetes' int-or-string (string bounds kept: CEL cost budget).
            string_bounds = {
                k: v for s in non_null if s.get("type") == "string" for k, v in s.items() if k == "maxLength"
            }
            node = {**rest, **string_bounds, "x-kubernetes-int-or-string": True}
        else:
            raise ValueError(f"cannot express anyOf {any_of} structurally")
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        # JSON Schema 2020 (pydantic) makes exclusive bounds numbers; OpenAPI v3.0
        # (the apiserver) wants the bound plus a boolean flag.
        if isinstance(node.get(exclusive), (int, float)) and not isinstance(node[exclusive], bool):
            node[bound] = node.pop(exclusive)
            node[exclusive] = True
    if node.get("default", "absent") is None:
        del node["default"]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    return node


def structural(model: type[m.ApiModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _simplify(_resolve(raw, defs))
    return schema


def crd_manifest() -> dict[str, Any]:
    spec_schema = structural(m.TrtAotiModelSpec)
    status_schema = structural(m.TrtAotiModelStatus)
    root = {
        "type": "object",
        "description": (
            "A PyTorch model compiled ahead of time (Torch-TensorRT + AOTInductor) per batch "
            "profile and served by trtaoti-server over the KServe V2 protocol."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [
            m.cel(
                f"size(self.metadata.name) <= {m.MAX_MODEL_NAME_LENGTH}",
                f"metadata.name must be at most {m.MAX_MODEL_NAME_LENGTH} characters "
                "(child Deployments and Services are named <name>-<profile>)",
            ),
            m.cel(
                f"self.metadata.name.matches('{m.DNS_LABEL_PATTERN}')",
                "metadata.name must be a DNS label (lowercase letters, digits, '-', starting with a letter): "
                "it names the model's Services",
            ),
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{m.PLURAL}.{m.GROUP}",
            "labels": {"app.kubernetes.io/name": "trtaoti", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": m.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": m.KIND,
                "listKind": f"{m.KIND}List",
                "plural": m.PLURAL,
                "singular": m.SINGULAR,
                "shortNames": m.SHORT_NAMES,
                "categories": ["trtaoti", "ml"],
            },
            "versions": [
                {
                    "name": m.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "Profiles", "type": "string", "jsonPath": ".status.profilesReady"},
                        {"name": "Backend", "type": "string", "jsonPath": ".spec.backend"},
                        {
                            "name": "Compiled",
                            "type": "string",
                            "priority": 1,
                            "jsonPath": '.status.conditions[?(@.type=="Compiled")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `trtaoti crds` from trtaoti.api.models. Do not edit.\n"
    return header + yaml.safe_dump(crd_manifest(), sort_keys=False, width=100)
