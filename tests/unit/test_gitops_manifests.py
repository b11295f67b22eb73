"""The Argo CD and Flux examples under deploy/gitops point at things that exist and work.

A GitOps example that names a missing path or values the chart rejects fails only after
a user has committed it to their fleet; these tests follow every reference instead:
repository paths, chart values (against values.schema.json and a real `helm template`),
the models they sync (parsed by the operator's own API models), and Flux dependencies.
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
import subprocess

import jsonschema
import pytest
import yaml

from support.tools import tool_missing
from trtaoti.api.models import KIND, TrtAotiModel

REPO = pathlib.Path(__file__).resolve().parents[2]
GITOPS = REPO / "deploy" / "gitops"
CHART = REPO / "charts" / "trtaoti-operator"


def docs_in(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs() -> list[tuple[pathlib.Path, dict]]:
    return [(p, d) for p in sorted(GITOPS.rglob("*.yaml")) for d in docs_in(p)]


def of_kind(kind: str) -> list[dict]:
    return [d for _, d in all_docs() if d.get("kind") == kind]


def chart_schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def helm_binary() -> pathlib.Path | None:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-binaries.sh"), "--print-dir"], capture_output=True, text=True, check=False
    )
    helm = pathlib.Path(out.stdout.strip()) / "helm"
    return helm if out.returncode == 0 and helm.is_file() else None


def assert_chart_accepts(values: dict) -> None:
    jsonschema.validate(values, chart_schema())
    helm = helm_binary()
    if helm is None:
        tool_missing("helm not built: run 'make bins' (the values passed the chart's JSON schema)")
    versions = dict(
        line.split("=", 1)
        for line in (REPO / "hack" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    proc = subprocess.run(
        [
            str(helm), "template", "gitops", str(CHART), "--kube-version", versions["KUBERNETES_VERSION"].lstrip("v"),
            "-f", "-",
        ],
        input=yaml.safe_dump(values), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip # argv: flags beside their values
    assert proc.returncode == 0, proc.stderr


def models_in(directory: pathlib.Path, include: str = "*.yaml", ignored: list[str] = ()) -> list[TrtAotiModel]:
    found = []
    for path in sorted(directory.glob("*.yaml")):
        rel = "/" + str(path.relative_to(REPO))
        if not fnmatch.fnmatch(path.name, include) or any(fnmatch.fnmatch(rel, pat) for pat in ignored):
            continue
        found += [TrtAotiModel.model_validate(doc) for doc in docs_in(path) if doc.get("kind") == KIND]
    return found


def test_every_manifest_is_an_object():
    docs = all_docs()
    assert len(docs) >= 8
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization" or "kustomize.config.k8s.io" not in doc["apiVersion"]:
            assert doc["metadata"]["name"], path


# --- Argo CD ----------------------------------------------------------------------


def test_argocd_operator_application_installs_the_chart():
    app = next(a for a in of_kind("Application") if a["spec"]["source"]["path"] == "charts/trtaoti-operator")
    assert (REPO / app["spec"]["source"]["path"] / "Chart.yaml").is_file()
    assert_chart_accepts(app["spec"]["source"]["helm"]["valuesObject"])
    assert int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < 0


def sync_wave(application: dict) -> int:
    return int(application["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_argocd_models_application_syncs_valid_models_after_the_operator():
    app = next(a for a in of_kind("Application") if a["spec"]["source"]["path"].startswith("examples/"))
    source = app["spec"]["source"]
    models = models_in(REPO / source["path"], include=source.get("directory", {}).get("include", "*.yaml"))
    assert len(models) == 1, "the Application would sync several objects of the same name"
    assert models[0].spec.device == "cuda"
    operator = next(a for a in of_kind("Application") if a["spec"]["source"]["path"] == "charts/trtaoti-operator")
    assert sync_wave(app) > sync_wave(operator)


# --- Flux -------------------------------------------------------------------------


def test_flux_helmrelease_chart_and_values():
    release = of_kind("HelmRelease")[0]
    chart = release["spec"]["chart"]["spec"]
    assert (REPO / chart["chart"] / "Chart.yaml").is_file()
    sources = {(d["kind"], d["metadata"]["name"]) for d in of_kind("GitRepository")}
    assert (chart["sourceRef"]["kind"], chart["sourceRef"]["name"]) in sources
    assert_chart_accepts(release["spec"]["values"])


def test_flux_kustomizations_resolve():
    kustomizations = [k for k in of_kind("Kustomization") if k["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")]
    names = {k["metadata"]["name"] for k in kustomizations}
    repo = of_kind("GitRepository")[0]
    ignored = [line.strip() for line in repo["spec"].get("ignore", "").splitlines() if line.strip()]
    for k in kustomizations:
        directory = REPO / k["spec"]["path"]
        assert directory.is_dir(), k["spec"]["path"]
        for dependency in k["spec"].get("dependsOn", []):
            assert dependency["name"] in names
        kustomize_file = directory / "kustomization.yaml"
        if kustomize_file.is_file():
            for resource in yaml.safe_load(kustomize_file.read_text())["resources"]:
                assert (directory / resource).is_file(), resource
        else:
            # Flux generates a kustomization of every YAML not ignored by the source:
            # the models must be valid and uniquely named.
            models = models_in(directory, ignored=ignored)
            assert models and len({m.name for m in models}) == len(models)
    models = next(k for k in kustomizations if k["spec"].get("dependsOn"))
    assert models["spec"]["wait"] is True


@pytest.mark.parametrize("kind", ["Namespace"])
def test_namespaces_enforce_restricted(kind: str):
    for namespace in of_kind(kind):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
