"""The GitOps health checks of TrtAotiModel, run by the engines Argo CD and Flux use.

- Argo CD: deploy/gitops/argocd/health.lua, run in Lua 5.1 (lupa embeds the reference
  interpreter; Argo CD's gopher-lua implements 5.1) with the object as the global `obj`.
- Flux: the healthCheckExprs of deploy/gitops/flux/kustomizations.yaml, evaluated by
  Flux's own evaluator (github.com/fluxcd/pkg/runtime/cel) through the small Go program
  in hack/flux-healthcheck, built once into the cache.

The statuses come from the operator's own status computation (trtaoti.resources.status),
so neither check can drift from what the operator writes without a test failing.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable

import pytest
import yaml

from support.tools import import_tool, tool_missing
from trtaoti.api.models import Artifact, BatchRange
from trtaoti.resources import status as st

REPO = pathlib.Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "deploy" / "gitops" / "argocd" / "health.lua"
ARGOCD_CM = REPO / "deploy" / "gitops" / "argocd" / "argocd-cm.yaml"
FLUX_KUSTOMIZATIONS = REPO / "deploy" / "gitops" / "flux" / "kustomizations.yaml"
FLUX_EVALUATOR = REPO / "hack" / "flux-healthcheck"
HEALTH_KEY = "resource.customizations.health.trtaoti.dev_TrtAotiModel"
NOW = "2026-11-26T08:00:00Z"

# --- the two engines ----------------------------------------------------------------


def argocd_health(obj: dict, script: str | None = None) -> dict:
    """Run the script the way Argo CD does: `obj` global, a returned table."""
    lua51 = import_tool("lupa.lua51", "lupa (test extra) provides Lua 5.1")
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    assert lua.eval("_VERSION") == "Lua 5.1"
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    return dict(result.items())


@functools.cache
def flux_evaluator() -> pathlib.Path:
    go = shutil.which("go")
    if go is None:
        tool_missing("go not on PATH: the Flux health-check evaluator is a Go program (CI has Go for 'make bins')")
    sources = [*sorted(FLUX_EVALUATOR.glob("*.go")), FLUX_EVALUATOR / "go.mod", FLUX_EVALUATOR / "go.sum"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    cache = pathlib.Path(os.environ.get("TRTAOTI_CACHE", pathlib.Path.home() / ".cache" / "trtaoti"))
    binary = cache / "gitops" / f"flux-healthcheck-{digest}"
    if not binary.is_file():
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        # Tests never download: the modules come from the module cache, filled at build
        # time by `go mod download` in hack/flux-healthcheck (see docs/install.md).
        proc = subprocess.run(
            [go, "build", "-trimpath", "-o", str(tmp), "."],
            cwd=FLUX_EVALUATOR,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "-mod=readonly"},
            check=False,
        )
        if proc.returncode != 0 and "GOPROXY=off" in proc.stderr:
            tool_missing(
                "the Flux evaluator's Go modules are not downloaded: "
                "run `cd hack/flux-healthcheck && go mod download` (a build step)"
            )
        assert proc.returncode == 0, f"building {FLUX_EVALUATOR} failed:\n{proc.stderr}"
        tmp.rename(binary)
    return binary


def flux_health(objects: list[dict]) -> list[dict]:
    proc = subprocess.run(
        [str(flux_evaluator()), str(FLUX_KUSTOMIZATIONS)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- objects with statuses the operator computes ------------------------------------


def model(generation: int, status: dict | None) -> dict:
    obj = {
        "apiVersion": "trtaoti.dev/v1alpha1",
        "kind": "TrtAotiModel",
        "metadata": {"name": "resnet", "namespace": "ml", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def artifact(key: str = "k" * 64) -> Artifact:
    return Artifact(
        uri=f"s3://b/{key}/model.pt2", sha256="0" * 64, bytes=10, key=key, batch=BatchRange(min=1, opt=4, max=16)
    )


def operator_status(observations: list[st.ProfileObservation], generation: int) -> dict:
    return st.compute_status(None, observations, generation, timestamp=NOW).to_wire()


def compiling(name: str = "online") -> st.ProfileObservation:
    return st.ProfileObservation(
        name=name, key="k" * 64, job=st.JobObservation(name=f"resnet-{name}-kkkkkkkk", state="Running")
    )


def serving(name: str = "online", ready: int = 2, replicas: int = 2, rolled_out: bool = True) -> st.ProfileObservation:
    art = artifact()
    deployment = st.DeploymentObservation(
        name=f"resnet-{name}", artifact=art, replicas=replicas, ready_replicas=ready, rolled_out=rolled_out
    )
    return st.ProfileObservation(name=name, key=art.key, artifact=art, deployment=deployment)


def failed_compile(name: str = "bulk") -> st.ProfileObservation:
    job = st.JobObservation(name=f"resnet-{name}-kkkkkkkk", state="Failed", message="TensorRT: out of memory")
    return st.ProfileObservation(name=name, key="k" * 64, job=job)


def stale_conditions() -> dict:
    obj = model(7, operator_status([serving()], 7))
    for condition in obj["status"]["conditions"]:
        condition["observedGeneration"] = 6
    return obj


def compile_failed_while_ready() -> dict:
    obj = model(2, operator_status([serving()], 2))
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Compiled":
            condition.update(status="False", reason="CompileFailed", message="exit 1")
    return obj


def source_problem() -> dict:
    obs = st.ProfileObservation(
        name="online", key=None, problem=st.Problem("ModelSourceUnreadable", "s3://models/ep.pt2: access denied")
    )
    return model(1, operator_status([obs], 1))


# name -> (object factory, Argo CD health, Flux status, words the Argo message must contain)
SCENARIOS: dict[str, tuple[Callable[[], dict], str, str, tuple[str, ...]]] = {
    "first visit, conditions Unknown": (
        lambda: model(1, st.initial_status(1, NOW).to_wire()),
        "Progressing",
        "InProgress",
        (),
    ),
    "compiling": (lambda: model(1, operator_status([compiling()], 1)), "Progressing", "InProgress", ("Compiling",)),
    "one profile compiled, one compiling": (
        lambda: model(1, operator_status([serving("online"), compiling("bulk")], 1)),
        "Progressing",
        "InProgress",
        ("bulk",),
    ),
    "rolling out": (
        lambda: model(1, operator_status([serving(ready=1, rolled_out=False)], 1)),
        "Progressing",
        "InProgress",
        ("RollingOut",),
    ),
    "all profiles ready": (
        lambda: model(3, operator_status([serving("online"), serving("bulk", 1, 1)], 3)),
        "Healthy",
        "Current",
        ("2/2",),
    ),
    "compile failed": (
        lambda: model(1, operator_status([serving("online"), failed_compile("bulk")], 1)),
        "Degraded",
        "Failed",
        ("CompileFailed", "out of memory"),
    ),
    "model source unreadable": (source_problem, "Degraded", "Failed", ("ModelSourceUnreadable", "access denied")),
    "spec edited, status one generation behind": (
        lambda: model(5, operator_status([serving()], 4)),
        "Progressing",
        "InProgress",
        ("5", "4"),
    ),
    "conditions from an older generation": (stale_conditions, "Progressing", "InProgress", ()),
    "Compiled=False wins over a stale Ready=True": (
        compile_failed_while_ready,
        "Degraded",
        "Failed",
        ("CompileFailed",),
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_argocd_health(scenario: str):
    make, expected, _, words = SCENARIOS[scenario]
    result = argocd_health(make())
    assert set(result) == {"status", "message"}
    assert result["status"] == expected, result["message"]
    for word in words:
        assert word in result["message"]


def test_flux_health():
    """All scenarios in one evaluator run (one process, same verdicts as Argo CD)."""
    objects = [make() for make, *_ in SCENARIOS.values()]
    verdicts = flux_health(objects)
    got = {name: v["status"] for name, v in zip(SCENARIOS, verdicts, strict=True)}
    assert got == {name: expected for name, (_, _, expected, _) in SCENARIOS.items()}


def test_new_object_without_status_is_never_healthy():
    """Before the operator's first status write (normally within a second of creation)."""
    obj = model(1, None)
    argo = argocd_health(obj)
    assert argo["status"] == "Progressing" and "operator" in argo["message"]
    # CEL cannot test for a missing top-level `status`: Flux's evaluator reports an
    # error for this moment (kustomize-controller keeps waiting), never Current.
    assert flux_health([obj])[0]["status"] not in ("Current", "Failed")


def test_argocd_cm_snippet_embeds_the_tested_script():
    config_map = yaml.safe_load(ARGOCD_CM.read_text())
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == "argocd-cm"
    embedded = config_map["data"][HEALTH_KEY]
    assert embedded.strip() == HEALTH_LUA.read_text().strip()
    obj = model(1, operator_status([failed_compile()], 1))
    assert argocd_health(obj, embedded) == argocd_health(obj)


def test_checks_see_a_status_change_not_a_constant():
    # Guards the guards: the same object flips verdict when only its status changes.
    obj = model(1, operator_status([serving()], 1))
    broken = copy.deepcopy(obj)
    broken["status"] = operator_status([failed_compile("online")], 1)
    assert [argocd_health(o)["status"] for o in (obj, broken)] == ["Healthy", "Degraded"]
    assert [v["status"] for v in flux_health([obj, broken])] == ["Current", "Failed"]
