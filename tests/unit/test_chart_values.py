"""values.yaml documents every key, and values.schema.json describes exactly those keys.

Helm validates values against values.schema.json on install, upgrade, template and lint;
these tests keep the schema, the defaults and their documentation in step. They need no
helm binary.
"""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest
import yaml

CHART = pathlib.Path(__file__).resolve().parents[2] / "charts" / "trtaoti-operator"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"

# Values that pass Kubernetes objects through verbatim: their inside is Kubernetes' schema.
PASSTHROUGH = {
    "podSecurityContext",
    "securityContext",
    "resources",
    "affinity",
    "nodeSelector",
    "tolerations",
    "extraEnv",
    "imagePullSecrets",
    "podAnnotations",
    "podLabels",
    "serviceAccount.annotations",
    "serviceMonitor.labels",
}


def key_paths(node: dict, prefix: str = "") -> list[str]:
    """Every key of the values tree, not descending into pass-through objects."""
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict) and value and path not in PASSTHROUGH:
            paths.extend(key_paths(value, path + "."))
    return paths


def schema_node(schema: dict, path: str) -> dict:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_schema_is_valid_draft7_and_accepts_defaults():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(VALUES.read_text()), schema)


def test_every_default_key_is_in_the_schema():
    schema = json.loads(SCHEMA.read_text())
    for path in key_paths(yaml.safe_load(VALUES.read_text())):
        schema_node(schema, path)  # KeyError names the undocumented key


def test_every_schema_key_has_a_default():
    values = yaml.safe_load(VALUES.read_text())
    schema = json.loads(SCHEMA.read_text())
    defaults = set(key_paths(values))

    def walk(node: dict, prefix: str = "") -> None:
        for key, child in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            assert path in defaults, f"{path} is in values.schema.json but has no default in values.yaml"
            if path not in PASSTHROUGH:
                walk(child, path + ".")

    walk(schema)


def test_every_key_is_documented_by_a_comment():
    """Each key's line, or the comment block right above it, explains it."""
    lines = VALUES.read_text().splitlines()
    undocumented = []
    stack: list[tuple[int, str]] = []
    documented_paths = set()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        key = stripped.split(":", 1)[0].strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        above = lines[i - 1].strip() if i else ""
        if above.startswith("#") or "#" in line.split(":", 1)[1]:
            documented_paths.add(path)
    values = yaml.safe_load(VALUES.read_text())
    for path in key_paths(values):
        parent = path.rsplit(".", 1)[0] if "." in path else None
        if path in documented_paths:
            continue
        # A group whose every member is documented needs no comment of its own.
        value = values
        for part in path.split("."):
            value = value[part]
        if isinstance(value, dict) and value and path not in PASSTHROUGH:
            continue
        if parent in PASSTHROUGH:
            continue
        undocumented.append(path)
    assert not undocumented, f"values.yaml keys without a comment: {undocumented}"


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"watchNamespaces": ["a", "a"]}, "watchNamespaces"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"image": {"repository": "x", "digest": "latest"}}, "digest"),
        ({"replicas": 2}, "replicas"),
        ({"crds": {"enabled": "yes"}}, "enabled"),
        ({"logLevel": "trace"}, "logLevel"),
    ],
)
def test_schema_rejects_bad_values(bad: dict, where: str):
    schema = json.loads(SCHEMA.read_text())
    values = yaml.safe_load(VALUES.read_text())
    for key, value in bad.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    with pytest.raises(jsonschema.ValidationError) as error:
        jsonschema.validate(values, schema)
    assert where in str(error.value.json_path) + str(error.value.message)
