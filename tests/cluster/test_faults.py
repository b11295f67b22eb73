"""The operator when the cluster around it fails (marker `faults`): the apiserver killed
and restarted, MinIO stopped in the middle of a compile, a problem left unrepaired for
many resync periods.

These tests break what they run against, so they start a control plane and MinIO of
their own (support.own_cluster) instead of the shared `cluster`; its apiserver keeps an
audit log of the operator's requests, which is how the reconcile rate is counted.
KWOK runs no containers: the tests play the compile step, as tests/cluster does.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import kopf
import pytest
from kubernetes import client

from operator_support import (
    Models,
    OperatorProcess,
    install_crd,
    model_manifest,
    operator_kubeconfig,
    play_compile,
    stage_artifact,
    storage_secret,
    storage_uri,
    upload_model,
)
from support.binaries import BinariesMissing
from support.kwok import finish_job_pods
from support.own_cluster import OwnCluster, own_cluster
from support.waiting import wait_for
from trtaoti.compiler.progress import termination_summary
from trtaoti.resources import names

pytestmark = pytest.mark.faults

ONLINE = {"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 1}
BULK = {"name": "bulk", "min": 32, "opt": 128, "max": 512, "replicas": 1}
KOPF_RETRY_BUDGET = sum(kopf.OperatorSettings().networking.error_backoffs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    try:
        with own_cluster(tmp_path_factory.mktemp("faults")) as started:
            install_crd(started.cluster)
            yield started
    except BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def identity(own: OwnCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return operator_kubeconfig(own.cluster, tmp_path_factory.mktemp("operator") / "kubeconfig")


@pytest.fixture
def models(own: OwnCluster) -> Iterator[Models]:
    """A fresh namespace with the storage Secret, in the fault tests' own cluster."""
    name = f"f-{secrets.token_hex(4)}"
    with own.cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        wait_for(lambda: core.read_namespaced_service_account("default", name), timeout=30,
                 what=f"ServiceAccount {name}/default", ignore=(client.ApiException,))  # fmt: skip
        storage_secret(own.cluster, name)
        m = Models(own.cluster, name)
        try:
            yield m
        finally:
            m.close()
            core.delete_namespace(name, propagation_policy="Background")


@contextlib.contextmanager
def operator_in(identity: Path, namespace: str, log: Path, resync_seconds: float) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(identity, log, [namespace], resync_seconds=resync_seconds).start()
    try:
        yield operator
        operator.assert_running()
    finally:
        operator.stop()


def job_uids(models: Models, name: str) -> list[str]:
    return sorted(j.metadata.uid for j in models.jobs(name))


def reported_job(models: Models, name: str, profile: str) -> str | None:
    """The compile Job the model's status names for `profile` (once it was written)."""
    profiles = (models.get(name) or {}).get("status", {}).get("profiles") or []
    return next((p.get("compileJob") for p in profiles if p["name"] == profile), None)


def wait_pod_running(models: Models, job_name: str, timeout: float) -> None:
    wait_for(lambda: any(p.status.phase == "Running" for p in models.job_pods(job_name)), timeout=timeout,
             what=f"a running pod of {job_name}")  # fmt: skip


def test_the_operator_rides_out_an_apiserver_crash(own, identity, models, tmp_path):
    """SIGKILL to the apiserver while a compile runs, down for longer than Kopf's whole
    retry budget for one request: the operator neither exits nor duplicates the Job,
    its watches come back (a model applied after the outage is seen without a resync
    knowing it) and a model changed after the outage converges."""
    ns = models.namespace
    storage, model_uri = storage_uri(own.cluster, ns), upload_model(own.cluster, ns)
    before = model_manifest("before", ns, model_uri, storage, profiles=[ONLINE])
    with operator_in(identity, ns, tmp_path / "operator.log", resync_seconds=5) as operator:
        models.apply(before)
        job = models.wait_job("before", "online")
        wait_for(lambda: reported_job(models, "before", "online") == job.metadata.name, timeout=30,
                 what="the status to name the compile Job")  # fmt: skip

        own.kill("kube-apiserver")
        down_since = time.monotonic()
        mark = len(operator.log())
        # The next resync's reconcile fails and is retried with a growing delay, not in a loop.
        failed_twice = re.compile(rf"reconcile of \('{ns}', 'before'\) failed \(attempt 2\); retrying in \d+s")
        wait_for(lambda: failed_twice.search(operator.log()[mark:]), timeout=60,
                 what="the operator's reconciles to fail without an apiserver")  # fmt: skip
        operator.assert_running()
        # Past the sum of Kopf's per-request retry delays, a request Kopf retries has
        # escalated; its watches must have survived that too.
        time.sleep(max(0.0, down_since + KOPF_RETRY_BUDGET + 15 - time.monotonic()))
        operator.assert_running()
        own.start_again("kube-apiserver")

        # After the outage: a new model, and a serving-only change to the one compiling.
        models.apply(model_manifest("after", ns, model_uri, storage, profiles=[{**ONLINE, "max": 32}]))
        before["spec"]["batchProfiles"][0]["replicas"] = 2
        models.apply(before)
        after_job = models.wait_job("after", "online", timeout=90)
        # The Job controller, the scheduler and KWOK (client-go informers) re-list after
        # an outage this long with a backoff of up to 30 s each, and a compile pod waits
        # on all three: that is the cluster catching up, not the operator.
        for compile_job in (job, after_job):
            wait_pod_running(models, compile_job.metadata.name, timeout=240)
        play_compile(models, job, storage)
        play_compile(models, after_job, storage, batch=(1, 4, 32))
        models.wait_condition("before", "Ready", "True", timeout=120)
        models.wait_condition("after", "Ready", "True", timeout=120)

    assert models.deployment("before-online").spec.replicas == 2
    assert job_uids(models, "before") == [job.metadata.uid], "a second compile Job for the same model"
    assert job_uids(models, "after") == [after_job.metadata.uid]


def test_minio_stopped_mid_compile_is_reported_then_recovered(own, identity, models, tmp_path):
    """MinIO stops while two compiles run: one has stored its package and exits 0, the
    other fails its upload (exit 1). Meanwhile the model says the store is unavailable;
    once MinIO is back the stored package is served, the failed compile's retry
    finishes, and the model ends Ready with the same two Jobs."""
    ns = models.namespace
    storage, model_uri = storage_uri(own.cluster, ns), upload_model(own.cluster, ns)
    models.apply(model_manifest("flaky", ns, model_uri, storage, profiles=[ONLINE, BULK]))
    with operator_in(identity, ns, tmp_path / "operator.log", resync_seconds=5):
        jobs = {p: models.wait_job("flaky", p) for p in ("online", "bulk")}
        wait_for(lambda: all(reported_job(models, "flaky", p) == j.metadata.name for p, j in jobs.items()),
                 timeout=30, what="the status to name both compile Jobs")  # fmt: skip
        uids = job_uids(models, "flaky")
        stage_artifact(models, jobs["bulk"], storage, batch=(32, 128, 512))
        wait_for(lambda: any(p.status.phase == "Running" for p in models.job_pods(jobs["online"].metadata.name)),
                 timeout=60, what="the online compile pod running")  # fmt: skip

        own.stop("minio")
        finish_job_pods(models.core, ns, jobs["bulk"].metadata.name, "Succeeded")
        said = f"compile failed: uploading model.pt2 to {storage}: connection refused"
        summary = termination_summary({"ok": False, "exitCode": 1, "error": said})
        finish_job_pods(models.core, ns, jobs["online"].metadata.name, "Failed", exit_code=1, message=summary)

        # What a user sees while the store is down (each look at it waits out the
        # storage client's retries, ~25 s, before it says so).
        down = models.wait_condition("flaky", "Compiled", "False", reason="StorageUnavailable", timeout=150)
        assert "reading model.exportedProgram" in down["message"], down["message"]
        online, bulk = (next(p for p in models.get("flaky")["status"]["profiles"] if p["name"] == name)
                        for name in ("online", "bulk"))  # fmt: skip
        assert online["phase"] == "Failed" and "reading model.exportedProgram" in online["message"], online
        # bulk's Job succeeded meanwhile: never "succeeded but stored no manifest" (an
        # unreadable store is not an empty one). It fails on the store too, unless the
        # operator happened to read its manifest before the stop (a resync): then it
        # keeps that artifact, as a serving profile does (next test).
        assert (bulk["phase"] == "Failed" and "reading model.exportedProgram" in bulk["message"]) or (
            bulk["phase"] in ("Compiled", "Ready") and bulk["artifact"]["key"] == bulk["artifactKey"]
        ), bulk
        events = models.core.list_namespaced_event(ns, field_selector="involvedObject.name=flaky").items
        assert any(e.type == "Warning" and "reading model.exportedProgram" in e.message for e in events)
        assert job_uids(models, "flaky") == uids, "a compile Job was replaced while the store was down"
        assert all(j.metadata.deletion_timestamp is None for j in models.jobs("flaky"))

        own.start_again("minio")
        # The package stored before the outage is served; the failed upload's retry runs.
        wait_for(lambda: models.deployment("flaky-bulk"), timeout=90, what="flaky-bulk served")
        compiling = models.wait_condition("flaky", "Compiled", "False", reason="Compiling", timeout=90)
        assert f"online: attempt 2 of 2 running; 1 failed (last: exit code 1: {said})" in compiling["message"], (
            compiling["message"]
        )
        play_compile(models, jobs["online"], storage)
        models.wait_condition("flaky", "Ready", "True", timeout=120)
    assert job_uids(models, "flaky") == uids


def test_a_serving_model_stays_ready_while_minio_is_down(own, identity, models, tmp_path):
    """Serving pods already hold their package: a store that cannot be read for a while
    (a MinIO restart) changes nothing they do, so the model stays Ready through it,
    without Warning events, and a spec change made then still waits for the store."""
    ns = models.namespace
    storage, model_uri = storage_uri(own.cluster, ns), upload_model(own.cluster, ns)
    manifest = model_manifest("steady", ns, model_uri, storage, profiles=[ONLINE])
    with operator_in(identity, ns, tmp_path / "operator.log", resync_seconds=3):
        models.apply(manifest)
        play_compile(models, models.wait_job("steady", "online"), storage)
        models.wait_condition("steady", "Ready", "True", timeout=90)
        [served_key] = [j.metadata.labels[names.LABEL_ARTIFACT_KEY] for j in models.jobs("steady")]
        warnings_before = {e.metadata.uid for e in models.core.list_namespaced_event(ns).items if e.type == "Warning"}

        own.stop("minio")
        stopped = datetime.datetime.now(datetime.UTC)

        def a_look_during_the_outage() -> bool:
            # A reconcile that starts (GET of the model) after the stop applies the serving
            # Deployment once it has tried the store; the next one starts once it is done.
            requests = [e for e in own.operator_requests() if e.time > stopped and e.namespace == ns]
            steps = iter(requests)
            return all(any(e.verb == verb and e.resource == resource for e in steps) for verb, resource in
                       (("get", "trtaotimodels"), ("patch", "deployments"), ("get", "trtaotimodels")))  # fmt: skip

        wait_for(a_look_during_the_outage, timeout=60, what="a whole reconcile during the outage")
        ready = models.condition("steady", "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "Ready"), ready
        assert models.condition("steady", "Compiled")["status"] == "True"
        warnings = [e.message for e in models.core.list_namespaced_event(ns).items
                    if e.type == "Warning" and e.metadata.uid not in warnings_before]  # fmt: skip
        assert warnings == []

        # A new spec needs the store (its artifact key includes the model's ETag): it waits.
        manifest["spec"]["batchProfiles"][0]["max"] = 64
        models.apply(manifest)
        waiting = models.wait_condition("steady", "Compiled", "False", reason="StorageUnavailable", timeout=60)
        assert "reading model.exportedProgram" in waiting["message"]

        own.start_again("minio")
        job = models.wait_job("steady", "online", exclude_keys={served_key}, timeout=60)
        play_compile(models, job, storage, batch=(1, 4, 64))
        models.wait_condition("steady", "Ready", "True", timeout=90)


RESYNC_SECONDS = 3.0
WINDOW_SECONDS = 20.0
WINDOWS = 3


def test_a_lasting_problem_is_looked_at_at_a_flat_rate(own, identity, models, tmp_path):
    """A model whose Secret never comes, left for 20 resync periods (3 s) and two of
    the 30 s re-checks: the operator keeps looking, once per resync, and the rate does
    not grow with uptime (each look used to start one more endless 30 s chain, so the
    count per window grew 6, 11, 15 here). Counted from the apiserver's audit log: each
    reconcile starts with a GET of the model."""
    ns = models.namespace
    manifest = model_manifest(
        "stuck", ns, upload_model(own.cluster, ns), storage_uri(own.cluster, ns), profiles=[ONLINE]
    )
    manifest["spec"]["storage"]["secretName"] = "never-created"
    with operator_in(identity, ns, tmp_path / "operator.log", resync_seconds=RESYNC_SECONDS):
        models.apply(manifest)
        models.wait_condition("stuck", "Compiled", "False", reason="SecretNotFound")
        start = datetime.datetime.now(datetime.UTC)
        end = start + datetime.timedelta(seconds=WINDOWS * WINDOW_SECONDS)

        def reconciles() -> list[datetime.datetime]:
            return [e.time for e in own.operator_requests()
                    if e.verb == "get" and e.resource == "trtaotimodels" and e.namespace == ns and e.name == "stuck"
                    and not e.subresource]  # fmt: skip

        # The measured interval itself; it ends with the first look after it.
        wait_for(lambda: any(t >= end for t in reconciles()), timeout=WINDOWS * WINDOW_SECONDS + 60,
                 interval=1, what="the operator's looks to cover every window")  # fmt: skip
        times = reconciles()
        window = datetime.timedelta(seconds=WINDOW_SECONDS)
        counts = [sum(1 for t in times if start + i * window <= t < start + (i + 1) * window) for i in range(WINDOWS)]
        print(f"reconciles per {WINDOW_SECONDS:.0f} s with a {RESYNC_SECONDS:.0f} s resync: {counts}")
        per_window = WINDOW_SECONDS / RESYNC_SECONDS  # one per resync, nothing else
        assert all(3 <= n <= per_window + 2 for n in counts), counts
        assert max(counts) - min(counts) <= 2, f"not flat: {counts}"
        assert models.condition("stuck", "Compiled")["reason"] == "SecretNotFound"
        assert models.jobs("stuck") == []

        # Still looking: the Secret's arrival is noticed at the next resync.
        secret = models.core.read_namespaced_secret("s3-credentials", ns)
        secret.metadata = {"name": "never-created"}
        models.core.create_namespaced_secret(ns, secret)
        models.wait_job("stuck", "online", timeout=30)
