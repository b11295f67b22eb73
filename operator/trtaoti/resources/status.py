"""Status from observations: per-profile phases, Compiled/Ready conditions, events.

Pure functions of what the reconciler observed (manifests, Jobs, Deployments), so
every transition is unit-tested without a cluster. Conditions follow the Kubernetes
API conventions: `lastTransitionTime` moves only when `status` changes, and both
conditions exist (Unknown) from the first visit on, so a GitOps tool never mistakes
a fresh object for a healthy one.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Literal

from trtaoti.api.models import (
    SUPERSEDED_KEYS_KEPT,
    Artifact,
    CanaryPromotion,
    CanaryStatus,
    Condition,
    ConditionStatus,
    ProfilePhase,
    ProfileStatus,
    TrtAotiModelStatus,
)

COMPILED = "Compiled"
READY = "Ready"
CONDITION_TYPES = (COMPILED, READY)

JobState = Literal["Running", "Succeeded", "Failed"]
# How observe.py words a compile pod the scheduler cannot place.
WAITING_FOR_NODE = "compile pod waiting for a node"


@dataclasses.dataclass(frozen=True)
class JobObservation:
    name: str
    state: JobState
    message: str = ""


@dataclasses.dataclass(frozen=True)
class DeploymentObservation:
    name: str
    artifact: Artifact | None
    replicas: int
    ready_replicas: int
    # The Deployment controller has seen the latest template and every replica runs it.
    rolled_out: bool


@dataclasses.dataclass(frozen=True)
class CanaryObservation:
    """An open canary of one target: its Deployment and the split asked for."""

    deployment: DeploymentObservation
    percent: int
    split: str  # "stable/canary" replicas
    promotion: str
    healthy_since: str | None = None
    promote_in: float | None = None  # seconds until an AfterHealthySeconds promotion is due


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something that stops a profile before or outside the compiler (CamelCase reason)."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class ProfileObservation:
    """One target: a batch profile on one GPU product (or on CPU)."""

    name: str
    key: str | None
    product: str | None = None
    label: str = ""  # how messages name the target ("online", or "online on NVIDIA-L4" in a fleet)
    artifact: Artifact | None = None  # the manifest for `key`, when it exists
    job: JobObservation | None = None  # the compile Job for `key`
    deployment: DeploymentObservation | None = None
    service: str | None = None
    endpoint: str | None = None
    problem: Problem | None = None
    canary: CanaryObservation | None = None


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _serves(deployment: DeploymentObservation | None, artifact: Artifact | None) -> bool:
    return (
        deployment is not None
        and artifact is not None
        and deployment.artifact is not None
        and deployment.artifact.key == artifact.key
    )


def profile_phase(obs: ProfileObservation) -> tuple[ProfilePhase, str | None]:
    """The phase of one profile and a message for humans."""
    if obs.artifact is not None and obs.problem is not None:
        # Compiled, but the apiserver refused its serving objects: waiting would not help.
        return ProfilePhase.failed, obs.problem.message
    if obs.artifact is not None and obs.canary is not None:
        # Not Ready while a canary is open, so GitOps health stays Progressing (RollingOut).
        canary = obs.canary.deployment
        how = "promote by setting serving.canary.percent to 100"
        if obs.canary.promotion == CanaryPromotion.after_healthy_seconds:
            how = "promoted after its healthy period" + (
                f" (Available since {obs.canary.healthy_since})" if obs.canary.healthy_since else ""
            )
        return (
            ProfilePhase.compiled,
            f"canary open: artifact {obs.artifact.key[:12]} on {obs.canary.split} (stable/canary) replicas, "
            f"{canary.ready_replicas}/{canary.replicas} canary replicas ready; {how}",
        )
    if obs.artifact is not None:
        deployment = obs.deployment
        if _serves(deployment, obs.artifact) and deployment is not None:
            if deployment.rolled_out and deployment.ready_replicas >= deployment.replicas:
                return ProfilePhase.ready, None
            return (
                ProfilePhase.compiled,
                f"rolling out: {deployment.ready_replicas}/{deployment.replicas} replicas ready",
            )
        return ProfilePhase.compiled, "compiled; serving Deployment not rolled out yet"
    if obs.problem is not None:
        return ProfilePhase.failed, obs.problem.message
    if obs.job is not None:
        if obs.job.state == "Failed":
            return ProfilePhase.failed, obs.job.message or f"compile Job {obs.job.name} failed"
        if obs.job.state == "Succeeded":
            return ProfilePhase.failed, f"compile Job {obs.job.name} succeeded but stored no manifest"
        if obs.job.message:
            return ProfilePhase.compiling, f"compile Job {obs.job.name}: {obs.job.message}"
        return ProfilePhase.compiling, f"compile Job {obs.job.name} running"
    return ProfilePhase.pending, None


def profile_status(obs: ProfileObservation) -> ProfileStatus:
    phase, message = profile_phase(obs)
    deployment = obs.deployment
    served = deployment.artifact if deployment is not None else None
    return ProfileStatus(
        name=obs.name,
        gpu_product=obs.product or "",
        phase=phase,
        artifact_key=obs.key,
        # What the endpoint answers with now; the compiled-but-not-yet-served one
        # takes its place once the rollout starts.
        artifact=served or obs.artifact,
        compile_job=obs.job.name if obs.job is not None else None,
        deployment=deployment.name if deployment is not None else None,
        service=obs.service,
        replicas=deployment.replicas if deployment is not None else None,
        ready_replicas=deployment.ready_replicas if deployment is not None else None,
        endpoint=obs.endpoint,
        message=message,
        canary=_canary_status(obs),
    )


def _canary_status(obs: ProfileObservation) -> CanaryStatus | None:
    if obs.canary is None or obs.canary.deployment.artifact is None:
        return None
    deployment = obs.canary.deployment
    return CanaryStatus(
        artifact=deployment.artifact,
        deployment=deployment.name,
        percent=obs.canary.percent,
        split=obs.canary.split,
        replicas=deployment.replicas,
        ready_replicas=deployment.ready_replicas,
        promotion=obs.canary.promotion,
        healthy_since=obs.canary.healthy_since,
    )


def _failure_reason(obs: ProfileObservation) -> str:
    return obs.problem.reason if obs.problem is not None else "CompileFailed"


def _label(obs: ProfileObservation) -> str:
    return obs.label or obs.name


def desired_conditions(
    observations: list[ProfileObservation], profiles: list[ProfileStatus]
) -> dict[str, tuple[ConditionStatus, str, str]]:
    """type -> (status, reason, message) for the current observations (one per target:
    a profile, or in a fleet a profile on one GPU product)."""
    pairs = list(zip(observations, profiles, strict=True))
    failed = [(o, p) for o, p in pairs if p.phase == ProfilePhase.failed]
    # A target that compiled but cannot be served fails Ready, not Compiled.
    serving_failed = [(o, p) for o, p in failed if o.artifact is not None]
    failed = [(o, p) for o, p in failed if o.artifact is None]
    uncompiled = [(o, p) for o, p in pairs if p.phase in (ProfilePhase.pending, ProfilePhase.compiling)]
    total = len(profiles)
    conditions: dict[str, tuple[ConditionStatus, str, str]] = {}

    if failed:
        reason = _failure_reason(failed[0][0])
        message = "; ".join(f"{_label(o)}: {p.message}" for o, p in failed)
        conditions[COMPILED] = (ConditionStatus.false, reason, message)
        conditions[READY] = (ConditionStatus.false, reason, message)
        return conditions

    compiled = total - len(uncompiled)
    if uncompiled:
        serving_old = [_label(o) for o, p in uncompiled if p.deployment is not None]
        message = f"{compiled}/{total} profiles compiled; compiling: {', '.join(_label(o) for o, _ in uncompiled)}"
        # Still Compiling (a cluster autoscaler may yet add the node), but say what it waits for.
        waiting = [f"{_label(o)}: {o.job.message}" for o in observations
                   if o.job is not None and o.job.state == "Running" and o.job.message]  # fmt: skip
        if waiting:
            message += "; " + "; ".join(waiting)
        conditions[COMPILED] = (ConditionStatus.false, "Compiling", message)
        ready_message = message
        if serving_old:
            ready_message += f" (previous artifact still serving: {', '.join(serving_old)})"
        conditions[READY] = (ConditionStatus.false, "Compiling", ready_message)
        return conditions

    conditions[COMPILED] = (ConditionStatus.true, "Compiled", f"{total}/{total} profiles compiled")
    not_ready = [(o, p) for o, p in pairs if p.phase != ProfilePhase.ready]
    if serving_failed:
        message = "; ".join(f"{_label(o)}: {p.message}" for o, p in serving_failed)
        conditions[READY] = (ConditionStatus.false, _failure_reason(serving_failed[0][0]), message)
    elif not_ready:
        message = "; ".join(f"{_label(o)}: {p.message}" for o, p in not_ready)
        conditions[READY] = (ConditionStatus.false, "RollingOut", message)
    else:
        conditions[READY] = (ConditionStatus.true, "Ready", f"{total}/{total} profiles serving")
    return conditions


def merge_condition(
    previous: Condition | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    timestamp: str,
) -> Condition:
    """A condition whose lastTransitionTime moves only when its status changes."""
    unchanged = previous is not None and previous.status == status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=previous.last_transition_time if unchanged and previous else timestamp,
    )


def initial_status(generation: int | None, timestamp: str) -> TrtAotiModelStatus:
    """What a CR shows from the first visit on: both conditions Unknown."""
    return TrtAotiModelStatus(
        observed_generation=None,
        conditions=[
            merge_condition(
                None, t, ConditionStatus.unknown, "Reconciling", "first reconcile in progress", generation, timestamp
            )
            for t in CONDITION_TYPES
        ],
    )


def compute_status(
    previous: TrtAotiModelStatus | None,
    observations: list[ProfileObservation],
    generation: int | None,
    timestamp: str | None = None,
) -> TrtAotiModelStatus:
    timestamp = timestamp or now()
    profiles = [profile_status(o) for o in observations]
    old = {c.type: c for c in (previous.conditions if previous else [])}
    conditions = [
        merge_condition(old.get(type_), type_, status, reason, message, generation, timestamp)
        for type_, (status, reason, message) in desired_conditions(observations, profiles).items()
    ]
    ready = sum(1 for p in profiles if p.phase == ProfilePhase.ready)
    return TrtAotiModelStatus(
        observed_generation=generation,
        conditions=conditions,
        profiles=profiles,
        profiles_ready=f"{ready}/{len(profiles)}",
        superseded_artifact_keys=superseded_keys(previous, profiles),
    )


def known_artifact(
    previous: TrtAotiModelStatus, generation: int | None, profile: str, key: str | None
) -> Artifact | None:
    """The artifact `profile` already had under `key` at this very generation (phase
    Compiled or Ready), else None.

    What a store that cannot be read for a while (StorageUnavailable) must not take
    away: a package never changes under its key, and the serving pods already hold it.
    Only within one generation: while the model's ETag cannot be read, `key` is the one
    last reported, which a newer spec may no longer want.
    """
    if key is None or previous.observed_generation != generation:
        return None
    for status in previous.profiles:
        compiled = status.phase in (ProfilePhase.compiled, ProfilePhase.ready)
        same_key = status.artifact_key == key and status.artifact is not None and status.artifact.key == key
        if status.name == profile and compiled and same_key:
            return status.artifact
    return None


def _keys(profiles: list[ProfileStatus]) -> list[str]:
    keys = [p.artifact_key for p in profiles if p.artifact_key]
    keys += [p.artifact.key for p in profiles if p.artifact]
    keys += [p.canary.artifact.key for p in profiles if p.canary]
    return list(dict.fromkeys(keys))


def superseded_keys(previous: TrtAotiModelStatus | None, profiles: list[ProfileStatus]) -> list[str]:
    """Keys the previous status held that the current one no longer does, appended to
    those already superseded: what retentionPolicy Delete must also delete one day."""
    if previous is None:
        return []
    current = set(_keys(profiles))
    history = [k for k in previous.superseded_artifact_keys if k not in current]
    history += [k for k in _keys(previous.profiles) if k not in current and k not in history]
    return history[-SUPERSEDED_KEYS_KEPT:]


def _waits_for_node(profile: ProfileStatus) -> bool:
    return profile.phase == ProfilePhase.compiling and WAITING_FOR_NODE in (profile.message or "")


@dataclasses.dataclass(frozen=True)
class Transition:
    """One Kubernetes Event worth posting."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def transitions(previous: TrtAotiModelStatus | None, current: TrtAotiModelStatus) -> list[Transition]:
    """Events for what changed: profile phases and condition statuses."""
    events: list[Transition] = []
    old_profiles = {(p.name, p.gpu_product): p for p in (previous.profiles if previous else [])}
    fleet = len({p.gpu_product for p in current.profiles}) > 1
    for profile in current.profiles:
        before = old_profiles.get((profile.name, profile.gpu_product))
        where = f" on {profile.gpu_product}" if fleet else ""
        if _waits_for_node(profile) and (before is None or not _waits_for_node(before)):
            # The phase stays Compiling (an autoscaler may add the node), so this is the
            # one Event that says no node of the GPU product takes the compile pod.
            events.append(Transition("Warning", "WaitingForNode", f"profile {profile.name}{where}: {profile.message}"))
        if before is not None and before.phase == profile.phase:
            continue
        failed = profile.phase == ProfilePhase.failed
        detail = f": {profile.message}" if profile.message else ""
        events.append(
            Transition(
                "Warning" if failed else "Normal",
                f"Profile{profile.phase}",
                f"profile {profile.name}{where} is {profile.phase}{detail}",
            )
        )
    old_conditions = {c.type: c for c in (previous.conditions if previous else [])}
    for condition in current.conditions:
        was = old_conditions.get(condition.type)
        if was is not None and was.status == condition.status:
            continue
        bad = condition.status == ConditionStatus.false and condition.reason not in ("Compiling", "RollingOut")
        events.append(
            Transition(
                "Warning" if bad else "Normal",
                f"{condition.type}{condition.status}" if condition.status != "True" else condition.type,
                f"{condition.type}={condition.status} ({condition.reason}): {condition.message}",
            )
        )
    return events
