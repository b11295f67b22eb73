"""docs/install.md's values table is generated from values.yaml's comments and current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "charts" / "trtaoti-operator" / "hack" / "generate-values-doc.py"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_values_doc", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_values_table_in_install_md_is_current():
    generator = _generator()
    doc = (REPO / "docs" / "install.md").read_text()
    assert generator.render(doc, (REPO / "charts/trtaoti-operator/values.yaml").read_text()) == doc, (
        "docs/install.md's values table is stale: run `make crds`"
    )


def _leaves(value, prefix=""):
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def test_every_value_is_documented_by_itself_or_by_a_documented_parent():
    generator = _generator()
    text = (REPO / "charts/trtaoti-operator/values.yaml").read_text()
    documented = {key for key, _ in generator.documented_keys(text)}
    undocumented = [
        leaf
        for leaf in _leaves(yaml.safe_load(text))
        if not any(leaf == key or leaf.startswith(f"{key}.") for key in documented)
    ]
    assert undocumented == []


def test_a_continuation_line_starting_with_dashes_does_not_start_a_new_entry():
    text = "# -- Runs one replica (Kopf\n# --standalone: two would clash).\nenabled: false\n"
    assert _generator().documented_keys(text) == [("enabled", "Runs one replica (Kopf --standalone: two would clash).")]
