"""The chart's CRD template is generated from crds/ and must not go stale.

crds/trtaotimodels.yaml (generated from trtaoti.api.models) is the one source of the
CRD; the chart carries a template generated from it. When the API changes, `make crds`
regenerates crds/ and this test names the command that refreshes the chart. (The
rendered template is compared with crds/ by test_chart_render.py.)
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
GENERATOR = REPO / "charts" / "trtaoti-operator" / "hack" / "generate-crd-template.py"


def test_chart_crd_template_is_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_every_crd_has_a_template():
    sources = {p.name for p in (REPO / "crds").glob("*.yaml")}
    templates = {p.name for p in (REPO / "charts" / "trtaoti-operator" / "templates" / "crds").glob("*.yaml")}
    assert sources and sources == templates


def test_template_is_gated_and_kept():
    for template in (REPO / "charts" / "trtaoti-operator" / "templates" / "crds").glob("*.yaml"):
        text = template.read_text()
        assert "{{- if .Values.crds.enabled }}" in text
        assert "helm.sh/resource-policy: keep" in text
