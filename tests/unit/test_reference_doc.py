"""docs/reference.md is the CRD schema rendered by trtaoti.api.reference, and current."""

from __future__ import annotations

import re
from pathlib import Path

from trtaoti.api.models import ServingSpec, TrtAotiModelSpec
from trtaoti.api.reference import load_crd, render

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reference.md"


def _row(text: str, path: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| `{path}` |"))
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_committed_reference_is_current():
    assert DOC.read_text() == render(load_crd()), (
        "docs/reference.md is stale: run `python -m trtaoti.api.reference -o docs/reference.md`"
    )


def test_every_spec_field_has_a_row_with_its_description_and_default():
    text = render(load_crd())
    for name, field in TrtAotiModelSpec.model_fields.items():
        row = _row(text, f"spec.{field.alias or name}")
        assert row[3] == " ".join(field.description.split())
    port = ServingSpec.model_fields["port"]
    row = _row(text, "spec.serving.port")
    assert row[1] == "integer" and row[2] == f"`{port.default}`"
    lower = next(m.ge for m in port.metadata if hasattr(m, "ge"))
    upper = next(m.le for m in port.metadata if hasattr(m, "le"))
    assert f">= {lower}; <= {upper}" in row[4]


def test_cel_rules_appear_with_their_messages():
    text = render(load_crd())
    rule = _row(text, "spec.batchProfiles[]")[4]
    assert "min must be <= opt" in rule and "self.min <= self.opt" in rule
