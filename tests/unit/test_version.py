"""VERSION is the project's one version: everything that names a release must agree."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import yaml

from trtaoti import __version__
from trtaoti.resources.config import ChildSettings

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()


def test_version_is_a_release_number():
    parts = VERSION.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), VERSION


def test_the_python_package_and_default_images_carry_it():
    assert version("trtaoti") == __version__ == VERSION
    settings = ChildSettings()
    for image in (settings.compiler_image, settings.server_image, settings.fetch_image):
        assert image.endswith(f":{VERSION}"), image


def test_the_chart_is_released_at_it():
    chart = yaml.safe_load((REPO / "charts/trtaoti-operator/Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == VERSION


def test_gitops_manifests_pin_its_tag():
    pins = []
    for path in sorted((REPO / "deploy/gitops").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            spec = (document or {}).get("spec") or {}
            source = spec.get("source") or {}
            if "targetRevision" in source:
                pins.append((path.name, source["targetRevision"]))
            if "tag" in (spec.get("ref") or {}):
                pins.append((path.name, spec["ref"]["tag"]))
    assert len(pins) >= 3, pins
    assert all(pin == f"v{VERSION}" for _, pin in pins), pins
