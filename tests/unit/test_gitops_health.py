"""The Argo CD health check (deploy/gitops/argocd/health.lua), run by a real Lua 5.1.

Argo CD evaluates health scripts in gopher-lua (Lua 5.1) with the live object as the
global `obj`. lupa embeds the reference Lua 5.1, so the script runs here exactly as
written. The statuses come from the operator's own status computation
(trtaoti.resources.status), so the check and the operator cannot drift apart silently.
"""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

lupa_lua51 = pytest.importorskip("lupa.lua51", reason="lupa (test extra) provides Lua 5.1")

from trtaoti.api.models import Artifact  # noqa: E402
from trtaoti.resources import status as st  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "deploy" / "gitops" / "argocd" / "health.lua"
ARGOCD_CM = REPO / "deploy" / "gitops" / "argocd" / "argocd-cm.yaml"
HEALTH_KEY = "resource.customizations.health.trtaoti.dev_TrtAotiModel"
NOW = "2026-11-26T08:00:00Z"


def argocd_health(obj: dict, script: str | None = None) -> dict:
    """Run the script the way Argo CD does: `obj` global, a returned table."""
    lua = lupa_lua51.LuaRuntime(unpack_returned_tuples=True)
    assert lua.eval("_VERSION") == "Lua 5.1"
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    return dict(result.items())


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
    return Artifact(uri=f"s3://b/{key}/model.pt2", sha256="0" * 64, bytes=10, key=key)


def operator_status(observations: list[st.ProfileObservation], generation: int) -> dict:
    computed = st.compute_status(None, observations, generation, timestamp=NOW)
    return computed.to_wire()


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


def test_script_returns_argo_health_table():
    result = argocd_health(model(1, operator_status([serving()], 1)))
    assert set(result) == {"status", "message"}
    assert result["status"] in {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def test_new_object_without_status_is_progressing():
    result = argocd_health(model(1, None))
    assert result["status"] == "Progressing"
    assert "operator" in result["message"]


def test_first_visit_unknown_conditions_are_progressing():
    initial = st.initial_status(1, NOW).to_wire()
    assert argocd_health(model(1, initial))["status"] == "Progressing"


def test_compiling_is_progressing_not_degraded():
    result = argocd_health(model(1, operator_status([compiling()], 1)))
    assert result["status"] == "Progressing"
    assert "Compiling" in result["message"]


def test_all_profiles_ready_is_healthy():
    result = argocd_health(model(3, operator_status([serving("online"), serving("bulk", 1, 1)], 3)))
    assert result["status"] == "Healthy"
    assert "2/2" in result["message"]


def test_rolling_out_is_progressing():
    status = operator_status([serving(ready=1, replicas=2, rolled_out=False)], 1)
    result = argocd_health(model(1, status))
    assert result["status"] == "Progressing"
    assert "RollingOut" in result["message"]


def test_failed_compile_is_degraded_with_reason_and_message():
    result = argocd_health(model(1, operator_status([serving("online"), failed_compile("bulk")], 1)))
    assert result["status"] == "Degraded"
    assert "CompileFailed" in result["message"]
    assert "out of memory" in result["message"]


def test_problem_reason_is_reported():
    obs = st.ProfileObservation(
        name="online", key=None, problem=st.Problem("ModelSourceUnreadable", "s3://models/ep.pt2: access denied")
    )
    result = argocd_health(model(1, operator_status([obs], 1)))
    assert result["status"] == "Degraded"
    assert "ModelSourceUnreadable" in result["message"] and "access denied" in result["message"]


def test_unobserved_generation_is_progressing_even_if_ready():
    # The user edited the spec (generation 5); the status still describes generation 4.
    status = operator_status([serving()], 4)
    result = argocd_health(model(5, status))
    assert result["status"] == "Progressing"
    assert "5" in result["message"] and "4" in result["message"]


def test_stale_condition_is_progressing():
    status = operator_status([serving()], 7)
    for condition in status["conditions"]:
        condition["observedGeneration"] = 6
    assert argocd_health(model(7, status))["status"] == "Progressing"


def test_degraded_beats_ready_when_compile_failed():
    # A hand-made status where Ready is still True from before but Compiled failed.
    status = operator_status([serving()], 2)
    broken = copy.deepcopy(status)
    for condition in broken["conditions"]:
        if condition["type"] == "Compiled":
            condition.update(status="False", reason="CompileFailed", message="exit 1")
    assert argocd_health(model(2, broken))["status"] == "Degraded"
    assert argocd_health(model(2, status))["status"] == "Healthy"


def test_argocd_cm_snippet_embeds_the_tested_script():
    config_map = yaml.safe_load(ARGOCD_CM.read_text())
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == "argocd-cm"
    embedded = config_map["data"][HEALTH_KEY]
    assert embedded.strip() == HEALTH_LUA.read_text().strip()
    # and it behaves identically when run from the ConfigMap
    obj = model(1, operator_status([failed_compile()], 1))
    assert argocd_health(obj, embedded) == argocd_health(obj)
