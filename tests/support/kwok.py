"""Deciding how fake (KWOK) pods end: the test plays the container.

Pods on KWOK nodes become Running and stay Running until they carry the annotation
`trtaoti.dev/kwok-outcome` = Succeeded | Failed (hack/kwok/pod-outcome-stages.yaml). A test
either puts `outcome_annotations(...)` into a pod template (the pod finishes right after
it starts) or calls `finish_pod` / `finish_job_pods` when it wants the pod to end.
"""

from __future__ import annotations

from kubernetes import client

OUTCOME = "trtaoti.dev/kwok-outcome"
EXIT_CODE = "trtaoti.dev/kwok-exit-code"
MESSAGE = "trtaoti.dev/kwok-message"
OUTCOMES = ("Succeeded", "Failed")


def outcome_annotations(outcome: str, *, exit_code: int | None = None, message: str | None = None) -> dict[str, str]:
    """Annotations that make KWOK finish a pod with `outcome` (exit code/message for Failed)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    annotations = {OUTCOME: outcome}
    if outcome == "Failed":
        code = 1 if exit_code is None else exit_code
        if not 1 <= code <= 255:
            raise ValueError(f"a failed container exits with 1..255, got {code}")
        annotations[EXIT_CODE] = str(code)
    elif exit_code not in (None, 0):
        raise ValueError("a Succeeded pod exits with 0; use outcome='Failed' for a non-zero code")
    if message is not None:
        annotations[MESSAGE] = message
    return annotations


def finish_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    outcome: str = "Succeeded",
    *,
    exit_code: int | None = None,
    message: str | None = None,
) -> None:
    """Makes the running fake pod `name` end with `outcome` (KWOK applies it within a second)."""
    body = {"metadata": {"annotations": outcome_annotations(outcome, exit_code=exit_code, message=message)}}
    core.patch_namespaced_pod(name, namespace, body)


def finish_job_pods(
    core: client.CoreV1Api,
    namespace: str,
    job_name: str,
    outcome: str = "Succeeded",
    *,
    exit_code: int | None = None,
    message: str | None = None,
) -> list[str]:
    """Finishes every active pod of Job `job_name`; returns their names (empty if none run yet)."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}").items
    names = []
    for pod in pods:
        if pod.status.phase in ("Pending", "Running") and not pod.metadata.deletion_timestamp:
            finish_pod(core, namespace, pod.metadata.name, outcome, exit_code=exit_code, message=message)
            names.append(pod.metadata.name)
    return names
