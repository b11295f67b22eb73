"""The committed CRD is exactly what the API models generate, and it is structural."""

from pathlib import Path

import yaml

from trtaoti.api.crd import crd_manifest, crd_yaml

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "trtaotimodels.yaml"


def test_committed_crd_is_generated_from_the_models():
    assert CRD_FILE.read_text() == crd_yaml(), "crds/ is stale: run `make crds` and commit the result"


def _walk(node, path="$"):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield from _walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural_and_documented():
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf" not in text and "oneOf" not in text
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        for flag in ("exclusiveMinimum", "exclusiveMaximum"):  # OpenAPI v3.0: booleans
            assert isinstance(node.get(flag, False), bool), f"{path}.{flag} is not a boolean"
        if path.startswith("$.spec.") and not path.endswith("{}") and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"


def test_status_subresource_and_printer_columns():
    version = crd_manifest()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Profiles"] == ".status.profilesReady"


def test_every_cel_rule_has_a_message():
    text = yaml.safe_dump(crd_manifest())
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def rules(node):
        if isinstance(node, dict):
            yield from node.get("x-kubernetes-validations", [])
            for value in node.values():
                yield from rules(value)
        elif isinstance(node, list):
            for value in node:
                yield from rules(value)

    found = list(rules(schema))
    assert len(found) >= 12, text
    assert all(r.get("message") and r.get("rule") for r in found)
