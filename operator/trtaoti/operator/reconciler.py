"""One idempotent reconcile of a TrtAotiModel: observe, converge children, report.

Level-based: whatever triggered it (a CR change, a child Job or Deployment event, the
periodic resync), the reconciler reads the CR and its children afresh, computes what
should exist, creates or server-side-applies it, removes what should not, and writes
the status. Running it twice does nothing the second time, so a restarted operator
simply picks up where the last one stopped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from trtaoti.api.models import (
    Artifact,
    BatchProfile,
    ConditionStatus,
    RetentionPolicy,
    TrtAotiModelSpec,
    TrtAotiModelStatus,
)
from trtaoti.operator import events
from trtaoti.operator.artifact_store import ArtifactStore
from trtaoti.operator.kube import FIELD_MANAGER, HANDOVER_FIELD_MANAGER, Kube, api_error_message
from trtaoti.operator.observe import job_state, observe_deployment, observe_job
from trtaoti.resources import compile_job, names, serving, status as status_rules
from trtaoti.resources.artifacts import InvalidManifest
from trtaoti.resources.config import ChildSettings
from trtaoti.resources.keys import artifact_key
from trtaoti.resources.owner import Owner
from trtaoti.resources.status import Problem, ProfileObservation
from trtaoti.storage import AccessDenied, BucketNotFound, NoCredentials, ObjectNotFound

log = logging.getLogger(__name__)

RETRY_PROBLEMS_AFTER_SECONDS = 30.0
STORAGE_UNAVAILABLE = "StorageUnavailable"  # the store could not be read (network, endpoint, 5xx)
SERVING_KINDS = ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")
COMPILE_KINDS = ("Job", "ConfigMap")


@dataclasses.dataclass
class Children:
    """Everything labelled as belonging to one CR, by kind then name."""

    by_kind: dict[str, dict[str, dict[str, Any]]]

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.by_kind.get(kind, {})

    def compile_job(self, profile: str, key: str) -> dict[str, Any] | None:
        for job in self.of("Job").values():
            labels = job["metadata"].get("labels") or {}
            if labels.get(names.LABEL_PROFILE) == profile and labels.get(names.LABEL_ARTIFACT_KEY) == key:
                return job
        return None


class NameConflict(Exception):
    """A child's name is taken by an object another owner (or nobody) holds."""


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
        # Where cross-model lookups (shared artifacts, shared compiles) may look: the
        # watched namespaces, or the whole cluster. A namespaced install has no
        # cluster-wide permissions.
        self.namespaces = namespaces
        self._seen: set[str] = set()
        # artifact key -> models waiting for another model's compile Job of that key.
        self._waiting: dict[str, set[tuple[str, str]]] = {}
        self._compile_locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, users)

    def waiting_for(self, key: str) -> set[tuple[str, str]]:
        """Models to reconcile when a compile Job of `key` changes (shared compiles)."""
        return set(self._waiting.get(key, ()))

    async def _list_in_scope(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        if not self.namespaces:
            return await self.kube.list(kind, None, selector)
        found: list[dict[str, Any]] = []
        for namespace in self.namespaces:
            found += await self.kube.list(kind, namespace, selector)
        return found

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """Converge one model; returns seconds after which to look again, if it should
        be sooner than the next event or resync (a missing Secret or model, an
        unreachable store: nothing in the cluster will announce their repair)."""
        body = await self.kube.get("TrtAotiModel", namespace, name)
        if body is None:
            return None
        if body["metadata"].get("deletionTimestamp"):
            await self._finalize(body)
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

        await self._ensure_finalizer(body, spec)
        owner = Owner.from_body(body)
        refusal = self._image_refusal(spec)
        if refusal is not None:
            # Nothing is created or changed for a spec that names an image not allowed here.
            last_keys = {p.name: p.artifact_key for p in previous.profiles}
            refused = [ProfileObservation(name=p.name, key=last_keys.get(p.name), problem=refusal)
                       for p in spec.batch_profiles]  # fmt: skip
            await self._write_status(body, previous, status_rules.compute_status(previous, refused, generation))
            return None
        children = await self._children(owner)
        env, problem = await self._storage_env(owner, spec)
        etag, etag_problem = await self._model_etag(owner, spec, env, problem)
        problem = problem or etag_problem

        # What each profile served, as last reported: the fallback when its Deployment was
        # deleted while a new artifact compiles (the Deployment is the first source).
        reported = {p.name: p.artifact for p in previous.profiles if p.artifact}
        keys = self._artifact_keys(spec, previous, etag, problem)
        observations = [
            await self._converge_profile(
                owner, spec, profile, children, env, keys[profile.name], problem, reported.get(profile.name),
                status_rules.known_artifact(previous, generation, profile.name, keys[profile.name]),
            )
            for profile in spec.batch_profiles
        ]
        await self._prune(owner, spec, children, observations)

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
        return RETRY_PROBLEMS_AFTER_SECONDS if waiting or any(o.problem for o in observations) else None

    # --- one profile ------------------------------------------------------------

    async def _converge_profile(
        self,
        owner: Owner,
        spec: TrtAotiModelSpec,
        profile: BatchProfile,
        children: Children,
        env: dict[str, str],
        key: str | None,
        problem: Problem | None,
        reported: Artifact | None = None,
        known: Artifact | None = None,
    ) -> ProfileObservation:
        service_name = names.serving_name(owner.name, profile.name)
        existing = children.of("Deployment").get(service_name)
        try:
            # Before any GPU time is spent on a profile that could never be served.
            await self._check_names_free(owner, service_name, children, ("Deployment", "Service"))
        except NameConflict as conflict:
            return ProfileObservation(name=profile.name, key=key, problem=Problem("NameConflict", str(conflict)))
        obs = ProfileObservation(name=profile.name, key=key, problem=problem)

        artifact: Artifact | None = None
        if problem is None:
            try:
                artifact = await self.store.artifact(spec.storage.uri, env, key)
            except InvalidManifest as error:
                obs = dataclasses.replace(obs, problem=Problem("InvalidManifest", str(error)))
            except Exception as error:  # the store's errors vary by backend; all mean "cannot read"
                # Also what keeps a Job that could never store its artifact from starting.
                failure = self._storage_problem(owner, spec, error, f"reading manifest {key}")
                obs = dataclasses.replace(obs, problem=failure)
        if artifact is None and known is not None and obs.problem is not None and obs.problem.reason == STORAGE_UNAVAILABLE:
            # A store down for a while (a MinIO restart) changes nothing the serving pods
            # do: this generation's artifact stays known, the profile stays Ready.
            log.info("%s/%s profile %s keeps artifact %s while the store cannot be read: %s",
                     owner.namespace, owner.name, profile.name, known.key, obs.problem.message)  # fmt: skip
            artifact, obs = known, dataclasses.replace(obs, problem=None)
        obs = dataclasses.replace(obs, artifact=artifact)

        job = children.compile_job(profile.name, key) if key is not None else None
        waiters = self._waiting.setdefault(key, set()) if key is not None else set()
        waiters.discard((owner.namespace, owner.name))
        if artifact is None and obs.problem is None and job is None:
            # Per key, check-then-create runs one reconcile at a time: two models with
            # the same compile inputs reconciled at once still make one Job.
            async with self._compile_lock(key):
                # Another model compiling the very same artifact: wait for its Job, not a twin.
                job = await self._shared_compile(key)
                if job is not None:
                    waiters.add((owner.namespace, owner.name))
                else:
                    job, job_problem = await self._start_compile(owner, spec, profile, key)
                    obs = dataclasses.replace(obs, problem=job_problem)
        if not waiters:
            self._waiting.pop(key, None)
        if job is not None:
            observed = await observe_job(self.kube, job)
            if job["metadata"]["namespace"] != owner.namespace:
                observed = dataclasses.replace(observed, name=f"{job['metadata']['namespace']}/{observed.name}")
            obs = dataclasses.replace(obs, job=observed)

        # Serve the new artifact once it exists; until then keep serving the old one.
        served = artifact or serving.served_artifact(existing) or reported
        if served is not None:
            try:
                deployment = await self._apply_serving(owner, spec, profile, served, children)
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

    async def _check_names_free(self, owner: Owner, name: str, children: Children, kinds: tuple[str, ...]) -> None:
        """Raises NameConflict when `name` is taken by an object this model does not own.

        Child names are "<model>-<profile>", so model "bert" with profile "base-online"
        and model "bert-base" with "online" want the same Deployment; a user's own Service
        may hold the name too. A server-side apply would take such an object over (or be
        refused with a puzzling ownerReferences error): refuse with a clear message.
        Only names missing from this model's children cost a GET.
        """
        for kind in kinds:
            if name in children.of(kind):
                continue
            live = await self.kube.get(kind, owner.namespace, name)
            if live is None:
                continue
            refs = live["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner.uid for ref in refs):
                continue
            holder = next((f"{ref['kind']} {ref['name']}" for ref in refs if ref.get("controller")), None)
            raise NameConflict(
                f"{kind} {owner.namespace}/{name} already exists and belongs to "
                f"{holder or 'no TrtAotiModel'}; rename this model or profile"
            )

    def _artifact_keys(
        self, spec: TrtAotiModelSpec, previous: TrtAotiModelStatus, etag: str | None, problem: Problem | None
    ) -> dict[str, str | None]:
        """Each profile's artifact key, or the last one reported (None: never known) while
        the model's ETag, part of the key, cannot be read. A key computed without it would
        be a different one, and pruning would delete the compile Job in flight over a
        Secret being rotated or one failed HEAD."""
        if problem is not None and spec.model.exported_program and not spec.model.sha256:
            last = {p.name: p.artifact_key for p in previous.profiles}
            return {profile.name: last.get(profile.name) for profile in spec.batch_profiles}
        compiler_image = self.settings.compiler_image_for(spec.compile.image)
        return {
            profile.name: artifact_key(spec, profile, compiler_image=compiler_image, source_etag=etag)
            for profile in spec.batch_profiles
        }

    @contextlib.asynccontextmanager
    async def _compile_lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._compile_locks.get(key, (asyncio.Lock(), 0))
        self._compile_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._compile_locks[key]
            if users == 1:
                del self._compile_locks[key]
            else:
                self._compile_locks[key] = (lock, users - 1)

    async def _shared_compile(self, key: str) -> dict[str, Any] | None:
        selector = f"{names.MANAGED_SELECTOR},{names.LABEL_ARTIFACT_KEY}={key}"
        for job in await self._list_in_scope("Job", selector):
            if job_state(job) == "Running" and not job["metadata"].get("deletionTimestamp"):
                return job
        return None

    async def _start_compile(
        self, owner: Owner, spec: TrtAotiModelSpec, profile: BatchProfile, key: str
    ) -> tuple[dict[str, Any] | None, Problem | None]:
        config_map = compile_job.build_spec_config_map(owner, spec, profile, key)
        job = compile_job.build_compile_job(owner, spec, profile, key, self.settings)
        try:
            await self.kube.apply(config_map)
            created = await self.kube.apply(job)
        except ApiException as error:
            if error.status in (400, 403, 422):
                return None, Problem("JobRejected", f"compile Job rejected: {api_error_message(error)}")
            raise
        log.info("started compile Job %s/%s for key %s", owner.namespace, job["metadata"]["name"], key)
        return created, None

    async def _apply_serving(
        self, owner: Owner, spec: TrtAotiModelSpec, profile: BatchProfile, artifact: Artifact, children: Children
    ) -> dict[str, Any]:
        name = names.serving_name(owner.name, profile.name)
        live = children.of("Deployment").get(name)
        if spec.serving.autoscaling is not None and live is not None:
            handover = serving.replicas_handover(live, FIELD_MANAGER, profile)
            if handover is not None:
                await self.kube.apply(handover, field_manager=HANDOVER_FIELD_MANAGER)
        deployment = await self.kube.apply(serving.build_deployment(owner, spec, profile, artifact, self.settings))
        await self.kube.apply(serving.build_service(owner, spec, profile))
        if serving.wants_disruption_budget(spec, profile):
            await self.kube.apply(serving.build_disruption_budget(owner, profile))
        elif name in children.of("PodDisruptionBudget"):
            await self.kube.delete("PodDisruptionBudget", owner.namespace, name)
        autoscaler = serving.build_autoscaler(owner, spec, profile)
        if autoscaler is not None:
            await self.kube.apply(autoscaler)
        elif name in children.of("HorizontalPodAutoscaler"):
            await self.kube.delete("HorizontalPodAutoscaler", owner.namespace, name)
        return deployment

    # --- everything else --------------------------------------------------------

    async def _children(self, owner: Owner) -> Children:
        selector = names.model_selector(owner.name)
        kinds = (*COMPILE_KINDS, *SERVING_KINDS)
        listed = await asyncio.gather(*(self.kube.list(kind, owner.namespace, selector) for kind in kinds))
        by_kind: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, items in zip(kinds, listed, strict=True):
            by_kind[kind] = {
                item["metadata"]["name"]: item
                for item in items
                if any(ref.get("uid") == owner.uid for ref in item["metadata"].get("ownerReferences") or [])
            }
        return Children(by_kind)

    async def _prune(
        self, owner: Owner, spec: TrtAotiModelSpec, children: Children, observations: list[ProfileObservation]
    ) -> None:
        """Remove serving objects of removed profiles and compile Jobs nobody needs."""
        profiles = {p.name for p in spec.batch_profiles}
        wanted_keys = {(o.name, o.key) for o in observations}
        # A profile whose key could not be computed this time keeps all its compile objects.
        unknown = {o.name for o in observations if o.key is None}
        for kind in SERVING_KINDS:
            for name, obj in children.of(kind).items():
                if (obj["metadata"].get("labels") or {}).get(names.LABEL_PROFILE) not in profiles:
                    log.info("deleting %s %s/%s: its profile was removed", kind, owner.namespace, name)
                    await self.kube.delete(kind, owner.namespace, name)
        for kind in COMPILE_KINDS:
            for name, obj in children.of(kind).items():
                labels = obj["metadata"].get("labels") or {}
                if labels.get(names.LABEL_PROFILE) in unknown:
                    continue
                if (labels.get(names.LABEL_PROFILE), labels.get(names.LABEL_ARTIFACT_KEY)) not in wanted_keys:
                    log.info("deleting %s %s/%s: its artifact key is no longer wanted", kind, owner.namespace, name)
                    await self.kube.delete(kind, owner.namespace, name)

    def _image_refusal(self, spec: TrtAotiModelSpec) -> Problem | None:
        message = self.settings.image_refusal("spec.compile.image", spec.compile.image) or self.settings.image_refusal(
            "spec.serving.image", spec.serving.image
        )
        return Problem("ImageNotAllowed", message) if message else None

    async def _storage_env(self, owner: Owner, spec: TrtAotiModelSpec) -> tuple[dict[str, str], Problem | None]:
        """The storage Secret as environment variables (values never logged)."""
        secret_name = spec.storage.secret_name
        if not secret_name:
            return {}, None
        try:
            secret = await self.kube.get("Secret", owner.namespace, secret_name)
        except ApiException as error:
            return {}, Problem("SecretUnreadable", f"storage Secret {secret_name}: {api_error_message(error)}")
        if secret is None:
            return {}, Problem("SecretNotFound", f"storage Secret {owner.namespace}/{secret_name} does not exist")
        env = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
        return env, None

    async def _model_etag(
        self, owner: Owner, spec: TrtAotiModelSpec, env: dict[str, str], problem: Problem | None
    ) -> tuple[str | None, Problem | None]:
        source = spec.model
        if problem is not None or not source.exported_program or source.sha256:
            return None, None
        try:
            return await self.store.model_etag(source.exported_program, env), None
        except ObjectNotFound:
            return None, Problem("ModelNotFound", f"model.exportedProgram {source.exported_program} does not exist")
        except Exception as error:
            return None, self._storage_problem(owner, spec, error, "reading model.exportedProgram")

    @staticmethod
    def _storage_problem(owner: Owner, spec: TrtAotiModelSpec, error: Exception, doing: str) -> Problem:
        """A failed store call as a condition that says what is missing (the storage
        layer's messages name the bucket or object; never a credential's value)."""
        if isinstance(error, BucketNotFound):
            return Problem("BucketNotFound", f"{error}: create it, or set spec.storage.uri to an existing bucket")
        if isinstance(error, AccessDenied | NoCredentials):
            secret = spec.storage.secret_name
            used = (f"the keys of Secret {owner.namespace}/{secret}" if secret
                    else "the operator's own, as spec.storage.secretName is not set")  # fmt: skip
            return Problem("StorageCredentials", f"{error} (credentials tried: {used})")
        return Problem(STORAGE_UNAVAILABLE, f"{doing}: {error}")

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
            await asyncio.gather(*(events.post(self.kube, body, e) for e in status_rules.transitions(previous, current)))
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

    # --- artifacts' lifecycle ---------------------------------------------------

    async def _ensure_finalizer(self, body: dict[str, Any], spec: TrtAotiModelSpec) -> None:
        """Hold deletion for artifact cleanup only when retentionPolicy is Delete."""
        finalizers = list(body["metadata"].get("finalizers") or [])
        wanted = spec.storage.retention_policy == RetentionPolicy.delete
        if wanted == (names.ARTIFACTS_FINALIZER in finalizers):
            return
        if wanted:
            finalizers.append(names.ARTIFACTS_FINALIZER)
        else:
            finalizers.remove(names.ARTIFACTS_FINALIZER)
        await self._patch_finalizers(body, finalizers)

    async def _patch_finalizers(self, body: dict[str, Any], finalizers: list[str]) -> None:
        meta = body["metadata"]
        # resourceVersion makes this a compare-and-swap: never drop someone else's finalizer.
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        await self.kube.merge_patch("TrtAotiModel", meta["namespace"], meta["name"], patch)

    async def _finalize(self, body: dict[str, Any]) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        if names.ARTIFACTS_FINALIZER not in finalizers:
            return
        owner = Owner.from_body(body)
        spec = TrtAotiModelSpec.model_validate(body.get("spec") or {})
        keys = await self._artifact_keys_of(owner, body)
        still_used = await self._keys_used_elsewhere(owner)
        env, problem = await self._storage_env(owner, spec)
        if problem is not None:
            await events.post(
                self.kube,
                body,
                status_rules.Transition("Warning", "ArtifactsRetained", f"cannot delete artifacts: {problem.message}"),
            )
        else:
            for key in sorted(keys - still_used):
                await self.store.delete_artifact(spec.storage.uri, env, key)
                log.info("deleted artifact %s%s/ of %s/%s", spec.storage.uri, key, owner.namespace, owner.name)
            if keys & still_used:
                log.info("kept artifacts still used by other models: %s", sorted(keys & still_used))
        finalizers.remove(names.ARTIFACTS_FINALIZER)
        await self._patch_finalizers(body, finalizers)

    async def _artifact_keys_of(self, owner: Owner, body: dict[str, Any]) -> set[str]:
        status = TrtAotiModelStatus.model_validate(body.get("status") or {})
        keys = {p.artifact_key for p in status.profiles if p.artifact_key}
        keys |= {p.artifact.key for p in status.profiles if p.artifact}
        keys |= set(status.superseded_artifact_keys)  # earlier specs' artifacts are this model's too
        children = await self._children(owner)
        for job in children.of("Job").values():
            key = (job["metadata"].get("labels") or {}).get(names.LABEL_ARTIFACT_KEY)
            if key:
                keys.add(key)
        for deployment in children.of("Deployment").values():
            artifact = serving.served_artifact(deployment)
            if artifact:
                keys.add(artifact.key)
        return keys

    async def _keys_used_elsewhere(self, owner: Owner) -> set[str]:
        """Keys other TrtAotiModels (any namespace) use: a shared artifact outlives one user."""
        used: set[str] = set()
        for other in await self._list_in_scope("TrtAotiModel"):
            if other["metadata"].get("uid") == owner.uid:
                continue
            leaving = other["metadata"].get("deletionTimestamp") and names.ARTIFACTS_FINALIZER in (
                other["metadata"].get("finalizers") or []
            )
            if leaving:
                continue  # also deleting its artifacts (e.g. its namespace is going away)
            status = TrtAotiModelStatus.model_validate(other.get("status") or {})
            used |= {p.artifact_key for p in status.profiles if p.artifact_key}
            used |= {p.artifact.key for p in status.profiles if p.artifact}
        return used
