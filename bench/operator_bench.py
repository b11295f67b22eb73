"""Operator latency and footprint at 50 TrtAotiModels (not a test: a measurement).

    make dev-cluster            # control plane + KWOK GPU nodes + MinIO
    python bench/operator_bench.py [--models 50] [--output bench/results/operator.md]

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
import platform
import secrets
import statistics
import sys
import threading
import time
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
        batch = client.BatchV1Api(self.api)
        for event in watch.Watch().stream(batch.list_namespaced_job, self.namespace, timeout_seconds=3600):
            job = event["object"]
            model = job.metadata.labels.get(names.LABEL_MODEL)
            now = time.monotonic()
            self.job_created.setdefault(model, now)
            if any(c.type == "Complete" and c.status == "True" for c in (job.status.conditions or [])):
                self.job_complete.setdefault(model, now)

    def _deps(self) -> None:
        apps = client.AppsV1Api(self.api)
        for event in watch.Watch().stream(apps.list_namespaced_deployment, self.namespace, timeout_seconds=3600):
            model = event["object"].metadata.labels.get(names.LABEL_MODEL)
            self.deployment_created.setdefault(model, time.monotonic())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "operator.md")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    kubeconfig = DEV_DIR / "kubeconfig"
    if not kubeconfig.is_file():
        sys.exit("no dev cluster: run `make dev-cluster` first")
    from support.binaries import require_binaries

    cluster = Cluster(str(kubeconfig), "", read_env_file(DEV_DIR / "s3.env"), require_binaries(), DEV_DIR)
    install_crd(cluster)
    work = DEV_DIR / "bench"
    work.mkdir(exist_ok=True)
    sa_kubeconfig = operator_kubeconfig(cluster, work / "operator.kubeconfig")

    namespace = f"bench-{secrets.token_hex(3)}"
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    storage_secret(cluster, namespace)
    models = Models(cluster, namespace)
    storage = storage_uri(cluster, namespace)
    model_uri = upload_model(cluster, namespace)

    operator = OperatorProcess(sa_kubeconfig, work / "operator.log", [namespace], resync_seconds=300).start()
    peak_rss = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        proc = psutil.Process(operator.proc.pid)
        while not sampling.is_set():
            try:
                peak_rss = max(peak_rss, proc.memory_info().rss)
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
        for i in range(args.models):
            name = f"m{i:03d}"
            # Distinct compile inputs (minBlockSize is in the key): every model compiles.
            manifest = model_manifest(name, namespace, model_uri, storage, profiles=[profile],
                                      compile={"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}, "minBlockSize": i + 1})
            applied[name] = time.monotonic()
            models.apply(manifest)

        def compile_one(name: str) -> None:
            job = models.wait_job(name, "p", timeout=args.timeout)
            play_compile(models, job, storage)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(compile_one, applied))
        deadline = time.monotonic() + args.timeout
        while len(watcher.deployment_created) < args.models and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        operator.stop()
        sampling.set()
        try:
            core.delete_namespace(namespace)
        except client.ApiException:
            pass

    to_job = [watcher.job_created[n] - applied[n] for n in applied if n in watcher.job_created]
    to_deploy = [watcher.deployment_created[n] - watcher.job_complete[n]
                 for n in applied if n in watcher.deployment_created and n in watcher.job_complete]
    rows = [
        ("apply -> compile Job created", to_job),
        ("Job complete -> Deployment created", to_deploy),
    ]
    lines = [
        "# Operator benchmark",
        "",
        f"`python bench/operator_bench.py --models {args.models}` on {platform.node()} "
        f"({psutil.cpu_count()} cores, {psutil.virtual_memory().total >> 30} GiB), dev cluster "
        "(real apiserver/controllers/scheduler, KWOK nodes, MinIO) on the same machine; "
        "operator as a subprocess under its least-privilege ServiceAccount, 4 reconcile workers.",
        "",
        "| interval | n | median (ms) | p95 (ms) | max (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, values in rows:
        if values:
            lines.append(f"| {label} | {len(values)} | {statistics.median(values) * 1000:.0f} | "
                         f"{percentile(values, 95) * 1000:.0f} | {max(values) * 1000:.0f} |")
        else:
            lines.append(f"| {label} | 0 | - | - | - |")
    lines += ["", f"Operator peak RSS: {peak_rss / (1 << 20):.0f} MiB over {args.models} models.", ""]
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if len(to_job) == len(to_deploy) == args.models else 1


if __name__ == "__main__":
    sys.exit(main())
