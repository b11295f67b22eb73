"""Operator latency and footprint at 50 TrtAotiModels (not a test: a measurement).

    python bench/operator_bench.py [--models 50] [--output bench/results/operator.md]

Uses the running `make dev-cluster` when it answers, else starts a private control
plane + KWOK GPU nodes + MinIO like the test fixtures (and stops them after).

Runs `trtaoti operator` (subprocess, least-privilege ServiceAccount, as in
tests/cluster) against the dev cluster, applies N models with distinct compile inputs,
plays each compile step (artifact + manifest into MinIO, then the KWOK pod exits 0) as
soon as its pod runs, and measures from watch events seen by this process:

- apply -> compile Job created
- compile Job complete -> serving Deployment created
- the operator process' peak RSS (sampled every 100 ms)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "cluster")]

import psutil  # noqa: E402
from kubernetes import client, watch  # noqa: E402

from operator_support import (  # noqa: E402
    Models,
    OperatorProcess,
    install_crd,
    model_manifest,
    operator_kubeconfig,
    play_compile,
    storage_secret,
    storage_uri,
    upload_model,
)
from support.cluster import Cluster  # noqa: E402
from support.devcluster import DEV_DIR, read_env_file  # noqa: E402
from support.waiting import wait_for  # noqa: E402
from trtaoti.resources import names  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


class Watcher(threading.Thread):
    """Records when each labelled Job/Deployment first appears / completes."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.api = api
        self.job_created: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}
        self.deployment_created: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        threads = [threading.Thread(target=self._jobs, daemon=True), threading.Thread(target=self._deps, daemon=True)]
        for t in threads:
            t.start()
        self.stop.wait()

    def _jobs(self) -> None:
        with contextlib.suppress(Exception):  # the stream breaks when the cluster stops
            self._watch_jobs()

    def _deps(self) -> None:
        with contextlib.suppress(Exception):
            self._watch_deployments()

    def _watch_jobs(self) -> None:
        batch = client.BatchV1Api(self.api)
        for event in watch.Watch().stream(batch.list_namespaced_job, self.namespace, timeout_seconds=3600):
            job = event["object"]
            model = job.metadata.labels.get(names.LABEL_MODEL)
            now = time.monotonic()
            self.job_created.setdefault(model, now)
            if any(c.type == "Complete" and c.status == "True" for c in (job.status.conditions or [])):
                self.job_complete.setdefault(model, now)

    def _watch_deployments(self) -> None:
        apps = client.AppsV1Api(self.api)
        for event in watch.Watch().stream(apps.list_namespaced_deployment, self.namespace, timeout_seconds=3600):
            model = event["object"].metadata.labels.get(names.LABEL_MODEL)
            self.deployment_created.setdefault(model, time.monotonic())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "operator.md")
    parser.add_argument("--append", action="store_true", help="add to --output instead of replacing it")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=32, help="the operator's reconcile workers")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="one model at a time (unloaded latency) instead of all at once (a burst)",
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(a_cluster())
        return measure(cluster, args)


@contextlib.contextmanager
def a_cluster() -> Iterator[Cluster]:
    """The running dev cluster, else a private control plane + MinIO (as the test fixtures do)."""
    from support.binaries import require_binaries
    from support.cluster import answers
    from support.control_plane import ControlPlane, Ports
    from support.minio_server import start_minio
    from support.ports import free_port
    from support.processes import ProcessSet

    bins = require_binaries()
    if answers(DEV_DIR / "kubeconfig") and (DEV_DIR / "s3.env").is_file():
        yield Cluster(str(DEV_DIR / "kubeconfig"), "", read_env_file(DEV_DIR / "s3.env"), bins, DEV_DIR)
        return
    state = Path(tempfile.mkdtemp(prefix="trtaoti-operator-bench-"))
    procs = ProcessSet(state, die_with_parent=True)
    try:
        s3_env = start_minio(procs, bins, state / "minio", free_port(), free_port())
        ports = Ports(etcd=free_port(), etcd_peer=free_port(), apiserver=free_port(),
                      controller_manager=free_port(), scheduler=free_port())  # fmt: skip
        plane = ControlPlane(state, bins, ports, procs)
        plane.up()
        try:
            yield Cluster(str(plane.kubeconfig), plane.server, s3_env, bins, state)
        finally:
            plane.down()
    finally:
        procs.stop_all()


def measure(cluster: Cluster, args: argparse.Namespace) -> int:
    install_crd(cluster)
    work = Path(tempfile.mkdtemp(prefix="trtaoti-operator-bench-work-"))
    sa_kubeconfig = operator_kubeconfig(cluster, work / "operator.kubeconfig")

    namespace = f"bench-{secrets.token_hex(3)}"
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    storage_secret(cluster, namespace)
    models = Models(cluster, namespace)
    storage = storage_uri(cluster, namespace)
    model_uri = upload_model(cluster, namespace)

    operator = OperatorProcess(
        sa_kubeconfig,
        work / "operator.log",
        [namespace],
        resync_seconds=300,
        extra_args=("--concurrency", str(args.concurrency)),
    ).start()
    load_before = os.getloadavg()[0]
    peak_rss = 0
    cpu_seconds = 0.0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, cpu_seconds
        proc = psutil.Process(operator.proc.pid)
        while not sampling.is_set():
            try:
                peak_rss = max(peak_rss, proc.memory_info().rss)
                times = proc.cpu_times()
                cpu_seconds = times.user + times.system
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    watcher = Watcher(cluster.api_client(), namespace)
    watcher.start()
    try:
        time.sleep(3)  # the operator's watches start; not part of any measured interval
        applied: dict[str, float] = {}
        profile = {"name": "p", "min": 1, "opt": 4, "max": 16, "replicas": 1}

        def apply(i: int) -> str:
            name = f"m{i:03d}"
            # Distinct compile inputs (minBlockSize is in the key): every model compiles.
            # CPU models: 50 compiles + 50 servers would not fit the fake GPU nodes, and
            # what is measured here is the operator, not the scheduler's GPU queue.
            manifest = model_manifest(
                name,
                namespace,
                model_uri,
                storage,
                profiles=[profile],
                device="cpu",
                backend="inductor",
                compile={"minBlockSize": i + 1},
            )
            applied[name] = time.monotonic()
            models.apply(manifest)
            return name

        def compile_one(name: str) -> None:
            job = models.wait_job(name, "p", timeout=args.timeout)
            play_compile(models, job, storage, device="cpu")

        def served(name: str) -> bool:
            return name in watcher.deployment_created

        if args.sequential:
            for i in range(args.models):
                name = apply(i)
                compile_one(name)
                wait_for(lambda name=name: served(name), timeout=args.timeout, what=f"Deployment of {name}")
        else:
            names_applied = [apply(i) for i in range(args.models)]
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(compile_one, names_applied))
            wait_for(lambda: all(map(served, names_applied)), timeout=args.timeout, what="every Deployment")
    finally:
        sampling.set()
        sampler.join()
        operator.stop()
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(namespace)

    to_job = [watcher.job_created[n] - applied[n] for n in applied if n in watcher.job_created]
    to_deploy = [
        watcher.deployment_created[n] - watcher.job_complete[n]
        for n in applied
        if n in watcher.deployment_created and n in watcher.job_complete
    ]
    rows = [
        ("apply -> compile Job created", to_job),
        ("Job complete -> Deployment created", to_deploy),
    ]
    lines = [
        "# Operator benchmark",
        "",
        f"`python bench/operator_bench.py --models {args.models}{' --sequential' if args.sequential else ''}"
        f"{f' --concurrency {args.concurrency}' if args.concurrency != 32 else ''}` "
        f"on {platform.node()} "
        f"({psutil.cpu_count()} cores, {psutil.virtual_memory().total >> 30} GiB), a real control plane "
        "(apiserver, controllers, scheduler, KWOK GPU nodes) and MinIO on the same machine; "
        f"operator as a subprocess under its least-privilege ServiceAccount, {args.concurrency} reconcile workers. "
        + (
            "Models applied one at a time, each compiled and served before the next (one model in flight)."
            if args.sequential
            else "All models applied at once (a burst); 8 threads play their compiles as their pods start."
        ),
        "",
        "| interval | n | median (ms) | p95 (ms) | max (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, values in rows:
        if values:
            lines.append(
                f"| {label} | {len(values)} | {statistics.median(values) * 1000:.0f} | "
                f"{percentile(values, 95) * 1000:.0f} | {max(values) * 1000:.0f} |"
            )
        else:
            lines.append(f"| {label} | 0 | - | - | - |")
    lines += [
        "",
        f"Operator peak RSS: {peak_rss / (1 << 20):.0f} MiB over {args.models} models; "
        f"operator CPU time {cpu_seconds:.1f} s for the whole run; machine load average "
        f"(1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.",
        "",
    ]
    if args.append and args.output.exists():
        lines = [args.output.read_text().rstrip("\n"), "", *lines[2:]]
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if len(to_job) == len(to_deploy) == args.models else 1


if __name__ == "__main__":
    sys.exit(main())
