"""One idempotent reconcile of a TrtAotiModel: observe, converge children, report.

Level-based: whatever triggered it (a CR change, a child Job or Deployment event, the
periodic resync), the reconciler reads the CR and its children afresh, computes what
should exist, creates or server-side-applies it, removes what should not, and writes
the status. Running it twice does nothing the second time, so a restarted operator
simply picks up where the last one stopped.

The parts with state or rules of their own live beside it: children.py (listing,
names, pruning), compiles.py (one Job per artifact key), storage_access.py (the
Secret, the model's ETag), artifact_gc.py (the finalizer that deletes artifacts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from trtaoti.api.models import (
    Artifact,
    ConditionStatus,
    TrtAotiModelSpec,
    TrtAotiModelStatus,
)
from trtaoti.artifact import InvalidManifest, artifact_key
from trtaoti.operator import events
from trtaoti.operator.artifact_gc import ArtifactCollector
from trtaoti.operator.artifact_store import ArtifactStore
from trtaoti.operator.children import (
    Children,
    NameConflict,
    check_names_free,
    list_children,
    prune,
    wanted_serving_names,
)
from trtaoti.operator.compiles import CompileCoordinator
from trtaoti.operator.kube import FIELD_MANAGER, HANDOVER_FIELD_MANAGER, Kube, api_error_message
from trtaoti.operator.observe import available_since, observe_deployment, observe_job
from trtaoti.operator.storage_access import STORAGE_UNAVAILABLE, model_etag, storage_env, storage_problem
from trtaoti.resources import canary as canary_rules
from trtaoti.resources import names, serving
from trtaoti.resources import status as status_rules
from trtaoti.resources.config import ChildSettings
from trtaoti.resources.owner import Owner
from trtaoti.resources.status import CanaryObservation, Problem, ProfileObservation
from trtaoti.resources.targets import Target, targets

log = logging.getLogger(__name__)

RETRY_PROBLEMS_AFTER_SECONDS = 30.0
V = TypeVar("V")


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: ChildSettings,
        store: ArtifactStore | None = None,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.store = store or ArtifactStore()
        # Cross-model lookups (shared artifacts, shared compiles) look in the watched
        # namespaces, or the whole cluster when none are named.
        self.compiles = CompileCoordinator(kube, settings, namespaces)
        self.artifacts = ArtifactCollector(kube, self.store, namespaces)
        self._seen: set[str] = set()

    def waiting_for(self, key: str) -> set[tuple[str, str]]:
        """Models to reconcile when a compile Job of `key` changes (shared compiles)."""
        return self.compiles.waiting_for(key)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """Converge one model; returns seconds after which to look again, if it should
        be sooner than the next event or resync (a missing Secret or model, an
        unreachable store: nothing in the cluster will announce their repair)."""
        body = await self.kube.get("TrtAotiModel", namespace, name)
        if body is None:
            return None
        if body["metadata"].get("deletionTimestamp"):
            await self.artifacts.finalize(body)
            return None

        previous = TrtAotiModelStatus.model_validate(body.get("status") or {})
        generation = body["metadata"].get("generation")
        if not previous.conditions:
            # Before any slow work, so a fresh object never looks healthy (or blank).
            previous = status_rules.initial_status(generation, status_rules.now())
            body = await self._write_status(body, None, previous)

        try:
            spec = TrtAotiModelSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            await self._report_invalid_spec(body, previous, str(error))
            return None

        await self.artifacts.ensure_finalizer(body, spec)
        owner = Owner.from_body(body)
        refusal = self._image_refusal(spec)
        if refusal is not None:
            # Nothing is created or changed for a spec that names an image not allowed here.
            last_keys = {(p.name, p.gpu_product): p.artifact_key for p in previous.profiles}
            refused = [_observation(t, _previous(last_keys, t), problem=refusal) for t in targets(spec)]
            await self._write_status(body, previous, status_rules.compute_status(previous, refused, generation))
            return None
        children = await list_children(self.kube, owner)
        env, problem = await storage_env(self.kube, owner, spec)
        etag = None
        if problem is None:
            etag, problem = await model_etag(self.store, owner, spec, env)

        # What each target served, as last reported: the fallback when its Deployment was
        # deleted while a new artifact compiles (the Deployment is the first source).
        reported = {(p.name, p.gpu_product): p.artifact for p in previous.profiles if p.artifact}
        wanted = targets(spec)
        keys = self._artifact_keys(spec, wanted, previous, etag, problem)
        observations = [
            await self._converge_target(
                owner,
                spec,
                target,
                children,
                env,
                keys[target.id],
                problem,
                _previous(reported, target),
                status_rules.known_artifact(previous, generation, target.profile.name, keys[target.id]),
            )
            for target in wanted
        ]
        wanted_names = wanted_serving_names(owner.name, wanted)
        wanted_names["Deployment"] |= {o.canary.deployment.name for o in observations if o.canary}
        await prune(self.kube, owner, wanted_names, children, observations)

        current = status_rules.compute_status(previous, observations, generation)
        await self._write_status(body, previous, current)
        if owner.uid not in self._seen:
            # Once per model and process: after a restart this says what was adopted.
            self._seen.add(owner.uid)
            in_flight = sorted(o.job.name for o in observations if o.job and o.job.state == "Running")
            log.info(
                "picked up %s/%s (generation %s, profiles ready %s, compile Jobs running: %s)",
                owner.namespace, owner.name, generation, current.profiles_ready, in_flight or "none",
            )  # fmt: skip
        # Pods are not watched, so nothing announces that a waiting compile pod got (or
        # still lacks) a node; nor the repair of a problem outside the cluster.
        waiting = any(o.job is not None and o.job.state == "Running" and o.job.message for o in observations)
        if waiting or any(o.problem for o in observations):
            return RETRY_PROBLEMS_AFTER_SECONDS
        # Nothing announces that a canary's healthy period ran out.
        due = [o.canary.promote_in for o in observations if o.canary and o.canary.promote_in is not None]
        return max(1.0, min(due)) if due else None

    # --- one (profile, GPU product) ----------------------------------------------

    async def _converge_target(
        self,
        owner: Owner,
        spec: TrtAotiModelSpec,
        target: Target,
        children: Children,
        env: dict[str, str],
        key: str | None,
        problem: Problem | None,
        reported: Artifact | None = None,
        known: Artifact | None = None,
    ) -> ProfileObservation:
        profile = target.profile
        service_name = names.serving_name(owner.name, profile.name)
        deployment_name = names.serving_name(owner.name, profile.name, target.naming_product)
        existing = children.of("Deployment").get(deployment_name)
        try:
            # Before any GPU time is spent on a target that could never be served.
            await check_names_free(self.kube, owner, deployment_name, children, ("Deployment",))
            await check_names_free(self.kube, owner, service_name, children, ("Service",))
        except NameConflict as conflict:
            return _observation(target, key, problem=Problem("NameConflict", str(conflict)))
        obs = _observation(target, key, problem=problem)

        artifact: Artifact | None = None
        if problem is None and key is not None:  # a key is always known when nothing failed
            try:
                artifact = await self.store.artifact(spec.storage.uri, env, key)
            except InvalidManifest as error:
                obs = dataclasses.replace(obs, problem=Problem("InvalidManifest", str(error)))
            except Exception as error:  # noqa: BLE001 - the store's errors vary by backend; all mean "cannot read"
                # Also what keeps a Job that could never store its artifact from starting.
                failure = storage_problem(owner, spec, error, f"reading manifest {key}")
                obs = dataclasses.replace(obs, problem=failure)
        if artifact is None and known is not None and obs.problem and obs.problem.reason == STORAGE_UNAVAILABLE:
            # A store down for a while (a MinIO restart) changes nothing the serving pods
            # do: this generation's artifact stays known, the profile stays Ready.
            log.info(
                "%s/%s profile %s keeps artifact %s while the store cannot be read: %s",
                owner.namespace, owner.name, target.label, known.key, obs.problem.message,
            )  # fmt: skip
            artifact, obs = known, dataclasses.replace(obs, problem=None)
        obs = dataclasses.replace(obs, artifact=artifact)

        own_job = children.compile_job(profile.name, key) if key is not None else None
        job, job_problem = await self.compiles.job_for(
            owner, spec, target, key, own_job, needed=artifact is None and obs.problem is None
        )
        if job_problem is not None:
            obs = dataclasses.replace(obs, problem=job_problem)
        if job is not None:
            observed = await observe_job(self.kube, job)
            if job["metadata"]["namespace"] != owner.namespace:
                observed = dataclasses.replace(observed, name=f"{job['metadata']['namespace']}/{observed.name}")
            obs = dataclasses.replace(obs, job=observed)

        # Serve the new artifact once it exists (beside the old one while a canary is
        # open); until then keep serving the old one.
        canary_name = names.canary_name(owner.name, profile.name, target.naming_product)
        live_canary = children.of("Deployment").get(canary_name)
        on_trial = serving.served_artifact(live_canary)
        healthy_since = available_since(live_canary) if on_trial and artifact and on_trial.key == artifact.key else None
        plan = canary_rules.plan(
            spec.serving.canary,
            serving.served_artifact(existing) or reported,
            artifact,
            healthy_since,
            datetime.datetime.now(datetime.UTC),
        )
        deployment: dict[str, Any] | None
        if plan is not None:
            if plan.promoted:
                log.info("%s/%s profile %s: serving artifact %s on every replica", owner.namespace, owner.name,
                         target.label, plan.stable.key)  # fmt: skip
            try:
                if plan.canary is not None:
                    obs = dataclasses.replace(
                        obs, canary=await self._apply_canary(owner, spec, target, plan, live_canary, healthy_since)
                    )
                deployment = await self._apply_serving(owner, spec, target, plan.stable, children, plan)
            except ApiException as error:
                obs = dataclasses.replace(
                    obs, problem=obs.problem or Problem("ServingRejected", api_error_message(error))
                )
                deployment = existing
            obs = dataclasses.replace(
                obs,
                deployment=observe_deployment(deployment) if deployment else None,
                service=service_name,
                endpoint=names.endpoint(service_name, owner.namespace, spec.serving.port),
            )
        return obs

    def _artifact_keys(
        self,
        spec: TrtAotiModelSpec,
        wanted: list[Target],
        previous: TrtAotiModelStatus,
        etag: str | None,
        problem: Problem | None,
    ) -> dict[tuple[str, str], str | None]:
        """Each target's artifact key, or the last one reported (None: never known) while
        the model's ETag, part of the key, cannot be read. A key computed without it would
        be a different one, and pruning would delete the compile Job in flight over a
        Secret being rotated or one failed HEAD."""
        if problem is not None and spec.model.exported_program and not spec.model.sha256:
            last = {(p.name, p.gpu_product): p.artifact_key for p in previous.profiles}
            return {t.id: _previous(last, t) for t in wanted}
        compiler_image = self.settings.compiler_image_for(spec.compile.image)
        return {
            t.id: artifact_key(spec, t.profile, compiler_image=compiler_image, source_etag=etag, gpu_product=t.product)
            for t in wanted
        }

    async def _apply_canary(
        self,
        owner: Owner,
        spec: TrtAotiModelSpec,
        target: Target,
        plan: canary_rules.Plan,
        live: dict[str, Any] | None,
        healthy_since: str | None,
    ) -> CanaryObservation:
        assert plan.canary is not None and spec.serving.canary is not None
        trial = serving.served_artifact(live)
        if live is not None and trial is not None and trial.key != plan.canary.key:
            # A newer artifact replaces the one on trial: a fresh Deployment, so its
            # healthy period starts from its own Available, not its predecessor's.
            await self.kube.delete("Deployment", owner.namespace, live["metadata"]["name"])
        split = self._split(spec, target)
        deployment = await self.kube.apply(
            serving.build_deployment(
                owner, spec, target, plan.canary, self.settings, replicas=split.canary, canary=True
            )
        )
        return CanaryObservation(
            deployment=observe_deployment(deployment),
            percent=spec.serving.canary.percent,
            split=str(split),
            promotion=spec.serving.canary.promotion,
            healthy_since=healthy_since,
            promote_in=plan.recheck_after,
        )

    @staticmethod
    def _split(spec: TrtAotiModelSpec, target: Target) -> canary_rules.Split:
        percent = spec.serving.canary.percent if spec.serving.canary else 100
        return canary_rules.split(spec.serving.replicas(target.profile, target.product), percent)

    async def _apply_serving(
        self,
        owner: Owner,
        spec: TrtAotiModelSpec,
        target: Target,
        artifact: Artifact,
        children: Children,
        plan: canary_rules.Plan | None = None,
    ) -> dict[str, Any]:
        profile = target.profile
        name = names.serving_name(owner.name, profile.name, target.naming_product)
        live = children.of("Deployment").get(name)
        if spec.serving.autoscaling is not None and live is not None:
            replicas = spec.serving.replicas(profile, target.product)
            handover = serving.replicas_handover(live, FIELD_MANAGER, replicas)
            if handover is not None:
                await self.kube.apply(handover, field_manager=HANDOVER_FIELD_MANAGER)
        # While a canary is open the stable Deployment keeps the rest of the replicas
        # (with an HPA, the HPA still decides its count).
        split = self._split(spec, target).stable if plan is not None and plan.canary is not None else None
        deployment = await self.kube.apply(
            serving.build_deployment(owner, spec, target, artifact, self.settings, replicas=split)
        )
        # One Service per profile, selecting every product's pods (applying it once per
        # product is a no-op for the apiserver after the first).
        await self.kube.apply(serving.build_service(owner, spec, profile))
        if serving.wants_disruption_budget(spec, target):
            await self.kube.apply(serving.build_disruption_budget(owner, target))
        elif name in children.of("PodDisruptionBudget"):
            await self.kube.delete("PodDisruptionBudget", owner.namespace, name)
        autoscaler = serving.build_autoscaler(owner, spec, target)
        if autoscaler is not None:
            await self.kube.apply(autoscaler)
        elif name in children.of("HorizontalPodAutoscaler"):
            await self.kube.delete("HorizontalPodAutoscaler", owner.namespace, name)
        return deployment

    # --- everything else --------------------------------------------------------

    def _image_refusal(self, spec: TrtAotiModelSpec) -> Problem | None:
        message = self.settings.image_refusal("spec.compile.image", spec.compile.image) or self.settings.image_refusal(
            "spec.serving.image", spec.serving.image
        )
        return Problem("ImageNotAllowed", message) if message else None

    async def _write_status(
        self, body: dict[str, Any], previous: TrtAotiModelStatus | None, current: TrtAotiModelStatus
    ) -> dict[str, Any]:
        before = (previous or TrtAotiModelStatus()).to_wire()
        if previous is not None and before == current.to_wire():
            return body
        meta = body["metadata"]
        updated = await self.kube.merge_patch(
            "TrtAotiModel", meta["namespace"], meta["name"], {"status": current.to_wire()}, subresource="status"
        )
        if previous is not None:  # the first-visit Unknowns are not news
            await asyncio.gather(
                *(events.post(self.kube, body, e) for e in status_rules.transitions(previous, current))
            )
        return updated

    async def _report_invalid_spec(self, body: dict[str, Any], previous: TrtAotiModelStatus, message: str) -> None:
        generation = body["metadata"].get("generation")
        timestamp = status_rules.now()
        old = {c.type: c for c in previous.conditions}
        current = TrtAotiModelStatus(
            observed_generation=generation,
            conditions=[
                status_rules.merge_condition(
                    old.get(t), t, ConditionStatus.false, "InvalidSpec", message[:1024], generation, timestamp
                )
                for t in status_rules.CONDITION_TYPES
            ],
            profiles=previous.profiles,
            profiles_ready=previous.profiles_ready,
            superseded_artifact_keys=previous.superseded_artifact_keys,
        )
        await self._write_status(body, previous, current)


def _observation(target: Target, key: str | None, *, problem: Problem | None = None) -> ProfileObservation:
    return ProfileObservation(
        name=target.profile.name, key=key, product=target.product, label=target.label, problem=problem
    )


def _previous(by_entry: dict[tuple[str, str], V], target: Target) -> V | None:
    """What the last status said of `target` (status entries written before fleets
    existed carry no GPU product)."""
    return by_entry.get(target.id, by_entry.get((target.profile.name, "")))
