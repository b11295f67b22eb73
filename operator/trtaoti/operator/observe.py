"""Reading children's state into the pure observations `trtaoti.resources.status` uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trtaoti.operator.kube import Kube
from trtaoti.resources import serving
from trtaoti.resources.compile_job import CONTAINER_NAME
from trtaoti.resources.status import WAITING_FOR_NODE, DeploymentObservation, JobObservation, JobState

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MAX_COMPILER_MESSAGE = 2000


def _condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def job_state(job: Mapping[str, Any]) -> JobState:
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return "Succeeded"
    if _condition(job, "Failed"):
        return "Failed"
    return "Running"


def _compiler_error(message: str) -> str:
    """The error of the compiler's JSON summary; the text itself when it is not one (a
    log tail, with FallbackToLogsOnError, when the compiler died before writing it)."""
    text = message.strip()
    if text.startswith("{"):
        try:
            summary = json.loads(text)
        except ValueError:
            return text
        if isinstance(summary, dict):
            return str(summary.get("error") or "")
    return text


def termination_message(pod: dict[str, Any]) -> str | None:
    """What the compiler said on its way out (its termination message, else its log tail)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER_NAME:
            continue
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            terminated = state.get("terminated")
            if terminated and (terminated.get("message") or terminated.get("reason")):
                text = _compiler_error(terminated.get("message") or "")
                code = terminated.get("exitCode")
                prefix = f"exit code {code}" if code is not None else terminated.get("reason", "")
                return f"{prefix}: {text}" if text else prefix
    return None


def unschedulable_message(pod: dict[str, Any]) -> str | None:
    """The scheduler's reason a pod is not placed (no node with the GPU product, not
    enough free GPUs, a quota), from its PodScheduled condition."""
    if (pod.get("spec") or {}).get("nodeName"):
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition.get("message") or condition.get("reason") or "not scheduled"
    return None


def retry_message(job: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    """For a Job still running after failed attempts (a killed or evicted compile pod):
    which attempt runs, and how the last one ended. Empty when none failed."""
    failed = int((job.get("status") or {}).get("failed") or 0)
    if failed == 0:
        return ""
    limit = (job.get("spec") or {}).get("backoffLimit")
    attempts = f" of {int(limit) + 1}" if limit is not None else ""
    ended = sorted(
        (p for p in pods if (p.get("status") or {}).get("phase") == "Failed"),
        key=lambda p: p["metadata"].get("creationTimestamp") or "",
    )
    last = termination_message(ended[-1]) if ended else None
    how = f" (last: {last[-MAX_COMPILER_MESSAGE:]})" if last else ""
    return f"attempt {failed + 1}{attempts} running; {failed} failed{how}"


async def observe_job(kube: Kube, job: dict[str, Any]) -> JobObservation:
    name = job["metadata"]["name"]
    state = job_state(job)
    if state == "Running":
        # Without this a compile that can never be placed would read "running" until the
        # Job's deadline (an hour) runs out.
        pods = await kube.list("Pod", job["metadata"]["namespace"], f"{JOB_NAME_LABEL}={name}")
        waiting = next((msg for msg in map(unschedulable_message, pods) if msg), None)
        message = f"{WAITING_FOR_NODE}: {waiting[:MAX_COMPILER_MESSAGE]}" if waiting else ""
        retry = retry_message(job, pods)
        message = "; ".join(m for m in (retry, message) if m)
        return JobObservation(name=name, state="Running", message=message)
    if state != "Failed":
        return JobObservation(name=name, state=state)
    failed = _condition(job, "Failed") or {}
    summary = failed.get("message") or failed.get("reason") or "compile Job failed"
    pods = await kube.list("Pod", job["metadata"]["namespace"], f"{JOB_NAME_LABEL}={name}")
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    compiler_says = next((msg for msg in map(termination_message, pods) if msg), None)
    message = f"{summary}; compiler: {compiler_says[-MAX_COMPILER_MESSAGE:]}" if compiler_says else summary
    return JobObservation(name=name, state="Failed", message=message)


def observe_deployment(deployment: Mapping[str, Any]) -> DeploymentObservation:
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    generation = deployment["metadata"].get("generation", 0)
    rolled_out = (
        status.get("observedGeneration", 0) >= generation
        and int(status.get("updatedReplicas", 0)) >= desired
        and int(status.get("replicas", 0)) <= int(status.get("updatedReplicas", 0))
    )
    return DeploymentObservation(
        name=deployment["metadata"]["name"],
        artifact=serving.served_artifact(deployment),
        replicas=desired,
        ready_replicas=int(status.get("readyReplicas", 0)),
        rolled_out=rolled_out,
    )


def available_since(deployment: Mapping[str, Any] | None) -> str | None:
    """Since when `deployment` has been Available with every replica of its current
    template ready (None: it is not). With maxUnavailable 0, Available means all."""
    if not deployment:
        return None
    observed = observe_deployment(deployment)
    available = _condition(deployment, "Available")
    if available is None or not observed.rolled_out or observed.ready_replicas < observed.replicas:
        return None
    return available.get("lastTransitionTime")
