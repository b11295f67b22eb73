"""The operator at scale: N TrtAotiModels (default 1,000) on M KWOK GPU nodes (default 200).

    python bench/operator_scale.py [--models 1000] [--nodes 200] [--json out.json]

Starts a control plane, KWOK and MinIO of its own (tests/support/own_cluster.py) with
M fake 8-GPU H100 nodes, runs the real operator (`trtaoti operator` as a subprocess,
under its least-privilege ServiceAccount, default flags: 32 workers, 300 s resync),
applies N models in a burst (each with distinct compile inputs, so each compiles),
plays every compile as its pod runs (package + manifest into MinIO, then the KWOK pod
exits 0), lets KWOK run the serving pods, and waits until every model is Ready.

Every interval is taken from the apiserver's clock, from its audit log (stageTimestamp:
when the apiserver answered the write), not from this process' watch:

- apply -> compile Job created: this script's apply of the model (its first) -> the
  operator's apply that created the Job;
- Job complete -> Deployment created: the job controller's status write that first
  said the Job succeeded (SuccessCriteriaMet, which Kubernetes >= 1.31 sets before
  Complete, or Complete; the operator acts on either) -> the operator's apply that
  created the Deployment. The operator serves a package as soon as its manifest is in
  storage (the compiler writes it last), so a reconcile that runs between the manifest
  and the Job's end creates the Deployment first: those are counted apart;
- compile done -> Deployment created: this script's patch that ends the compile pod,
  sent right after the manifest is stored (what the compiler's exit is) -> the same;
- all Ready: the first apply -> the last model's status write with Ready=True.

The operator's footprint comes from /proc/<pid> sampled every 0.5 s (RSS, and VmHWM,
the kernel's own peak, at the end; utime+stime). Reconciles are counted from the audit
log: each reconcile starts with one GET of its model, and nothing else in the operator
GETs a single TrtAotiModel (Kopf lists and watches); requests per reconcile divide
all of the operator's requests over its lifetime (its watches and lists included) by
that count.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This checkout's package, here and in the operator subprocess (OPERATOR_ENV): the
# shared venv's editable install may point at another checkout.
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests"), str(REPO / "tests" / "cluster")]
OPERATOR_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))}

from kubernetes import client, watch  # noqa: E402

from operator_support import (  # noqa: E402
    GPU,
    Models,
    OperatorProcess,
    install_crd,
    model_manifest,
    operator_kubeconfig,
    storage_secret,
    storage_uri,
    store_for,
    upload_model,
)
from support.artifacts import store_artifact  # noqa: E402
from support.kwok import finish_pod  # noqa: E402
from support.own_cluster import (  # noqa: E402
    OPERATOR_USER,
    AuditEvent,
    OwnCluster,
    gpu_fleet,
    own_cluster,
    read_audit_log,
)
from support.waiting import wait_for  # noqa: E402
from trtaoti.api.models import GROUP, PLURAL, VERSION  # noqa: E402
from trtaoti.resources import names  # noqa: E402

ADMIN_USER = "trtaoti-admin"  # the CN of the admin kubeconfig support.control_plane writes
JOB_CONTROLLER = "system:serviceaccount:kube-system:job-controller"
# Before the operator's own rule (first match wins): this script's applies of models
# and its patches that end compile pods, the job controller's status writes with their
# bodies (which one set Complete), and the operator's status writes with their bodies
# (which one said Ready=True).
AUDIT_RULES = [
    {"level": "Metadata", "users": [ADMIN_USER], "verbs": ["create", "patch"],
     "resources": [{"group": GROUP, "resources": [PLURAL]}]},
    {"level": "Metadata", "users": [ADMIN_USER], "verbs": ["patch"], "resources": [{"group": "", "resources": ["pods"]}]},
    {"level": "Request", "users": [JOB_CONTROLLER], "verbs": ["update", "patch"],
     "resources": [{"group": "batch", "resources": ["jobs/status"]}]},
    {"level": "Request", "users": [OPERATOR_USER], "verbs": ["patch"],
     "resources": [{"group": GROUP, "resources": [f"{PLURAL}/status"]}]},
]  # fmt: skip
PROFILE = {"name": "p", "min": 1, "opt": 4, "max": 16, "replicas": 1}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- the operator process, from /proc ----------------------------------------------


class ProcSampler(threading.Thread):
    """RSS and CPU seconds of one process every `interval` seconds, from /proc."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, float]] = []  # (monotonic, rss bytes, cpu seconds)
        self.peak_hwm = 0  # VmHWM, the kernel's peak RSS, as last read
        self.stopped = threading.Event()

    def read(self) -> tuple[int, int, float]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = {k: v.split() for k, _, v in (line.partition(":") for line in status.splitlines())}
        rss, hwm = int(fields["VmRSS"][0]) << 10, int(fields["VmHWM"][0]) << 10
        # Fields after the command (which may hold spaces) start at state, field 3: utime is 14, stime 15.
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
        return rss, hwm, cpu

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                rss, hwm, cpu = self.read()
            except (OSError, KeyError, IndexError):  # the process is gone
                return
            self.peak_hwm = max(self.peak_hwm, hwm)
            self.samples.append((time.monotonic(), rss, cpu))
            self.stopped.wait(self.interval)

    def between(self, start: float, end: float) -> dict[str, float]:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        cpu = inside[-1][2] - inside[0][2]
        wall = inside[-1][0] - inside[0][0]
        # The busiest 10 s: CPU seconds over the samples 10 s apart (or less, at the ends).
        busiest = 0.0
        j = 0
        for i in range(len(inside)):
            while inside[i][0] - inside[j][0] > 10:
                j += 1
            if inside[i][0] - inside[j][0] >= 5:
                busiest = max(busiest, (inside[i][2] - inside[j][2]) / (inside[i][0] - inside[j][0]))
        return {
            "peak_rss_mib": max(s[1] for s in inside) / (1 << 20),
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "mean_cores": cpu / wall if wall else 0.0,
            "busiest_10s_cores": busiest,
        }


# --- playing the compiler ------------------------------------------------------------


class CompilePlayer(threading.Thread):
    """Does what `trtaoti compile` would for each compile pod once it runs: the package
    and its manifest into MinIO (support.artifacts, the compiler's own manifest model),
    then KWOK ends the pod with exit 0. One watch of compile pods, a pool of workers."""

    def __init__(self, own: OwnCluster, namespace: str, storage: str, workers: int) -> None:
        super().__init__(daemon=True)
        self.own = own
        self.namespace = namespace
        self.storage = storage
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="play")
        self.local = threading.local()
        self.seen: set[str] = set()
        self.played = 0
        self.errors: list[str] = []
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def _clients(self) -> tuple[client.CoreV1Api, Any]:
        if not hasattr(self.local, "core"):
            self.local.core = client.CoreV1Api(self.own.cluster.api_client())
            self.local.store = store_for(self.own.cluster, self.storage)
        return self.local.core, self.local.store

    def run(self) -> None:
        core = client.CoreV1Api(self.own.cluster.api_client())
        selector = f"{names.LABEL_COMPONENT}={names.COMPONENT_COMPILE}"
        while not self.stopped.is_set():
            try:  # a new watch starts with the pods there are, so none is missed between two
                stream = watch.Watch().stream(core.list_namespaced_pod, self.namespace, label_selector=selector,
                                              timeout_seconds=120)  # fmt: skip
                for event in stream:
                    pod = event["object"]
                    if self.stopped.is_set():
                        return
                    if event["type"] == "DELETED" or pod.status.phase != "Running" or pod.metadata.uid in self.seen:
                        continue
                    self.seen.add(pod.metadata.uid)
                    self.pool.submit(self._play, pod)
            except Exception as error:  # noqa: BLE001 - a broken stream: watch again
                if not self.stopped.is_set():
                    self.errors.append(f"watch: {error}")
                    time.sleep(1)

    def _play(self, pod: client.V1Pod) -> None:
        labels = pod.metadata.labels
        key = labels[names.LABEL_ARTIFACT_KEY]
        core, store = self._clients()
        try:
            store_artifact(store, key, f"compiled package {key}".encode(), batch=(1, 4, 16), device="cuda",
                           model_name=labels.get(names.LABEL_MODEL, "m"), profile=labels.get(names.LABEL_PROFILE, "p"),
                           gpu_product=labels.get(names.LABEL_GPU_PRODUCT, GPU))  # fmt: skip
            finish_pod(core, self.namespace, pod.metadata.name, "Succeeded")
            with self.lock:
                self.played += 1
        except Exception as error:  # noqa: BLE001 - counted and reported; the run then times out
            self.errors.append(f"{pod.metadata.name}: {error}")

    def stop(self) -> None:
        self.stopped.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- the run -------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=200, help="fake 8-GPU H100 nodes")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--resync-seconds", type=float, default=300, help="the operator's (its default: 300)")
    parser.add_argument("--concurrency", type=int, default=32, help="the operator's reconcile workers (its default)")
    parser.add_argument("--apply-threads", type=int, default=8, help="threads applying the burst")
    parser.add_argument("--play-threads", type=int, default=8, help="threads playing compiles")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for every model to be Ready")
    parser.add_argument("--state-dir", type=Path, default=None, help="keep the cluster's logs here")
    parser.add_argument("--reanalyse", type=Path, default=None, metavar="STATE_DIR",
                        help="no run: the results again from a finished run's state directory")  # fmt: skip
    args = parser.parse_args()
    if args.reanalyse:
        result = reanalyse(args.reanalyse)
        if args.json:
            write_json(args.json, result)
        print(render(result))
        return 0

    state = args.state_dir or Path(tempfile.mkdtemp(prefix="trtaoti-operator-scale-"))
    state.mkdir(parents=True, exist_ok=True)
    print(f"state and logs in {state}", flush=True)
    fleet = gpu_fleet(state / "fleet-nodes.yaml", args.nodes)
    t0 = time.monotonic()
    with own_cluster(state / "cluster", fake_nodes=fleet, die_with_parent=True, audit_rules=AUDIT_RULES) as own:
        print(f"control plane with {args.nodes} GPU nodes up in {time.monotonic() - t0:.0f} s", flush=True)
        result = run(own, args, state)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    print(render(result))
    return 0 if result["ready"] == args.models else 1


def run(own: OwnCluster, args: argparse.Namespace, state: Path) -> dict[str, Any]:
    cluster = own.cluster
    install_crd(cluster)
    identity = operator_kubeconfig(cluster, state / "operator.kubeconfig")
    namespace = f"scale-{secrets.token_hex(3)}"
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for(lambda: core.read_namespaced_service_account("default", namespace), timeout=60,
             what="the namespace's default ServiceAccount", ignore=(client.ApiException,))  # fmt: skip
    storage_secret(cluster, namespace)
    storage, model_uri = storage_uri(cluster, namespace), upload_model(cluster, namespace)
    models = Models(cluster, namespace)

    operator = OperatorProcess(identity, state / "operator.log", [namespace], resync_seconds=args.resync_seconds,
                               extra_args=("--concurrency", str(args.concurrency)), env=OPERATOR_ENV).start()  # fmt: skip
    assert operator.proc is not None
    sampler = ProcSampler(operator.proc.pid)
    sampler.start()
    player = CompilePlayer(own, namespace, storage, args.play_threads)
    player.start()
    load_before = os.getloadavg()

    def watching() -> bool:  # Kopf lists each kind before it watches it
        operator.assert_running()
        listed = {e.resource for e in own.operator_requests() if e.verb == "list"}
        return {PLURAL, "jobs", "deployments"} <= listed

    wait_for(watching, timeout=120, interval=1, what="the operator to list models, Jobs and Deployments")
    print(f"operator up (pid {operator.proc.pid}); applying {args.models} models", flush=True)

    burst_start = time.monotonic()

    def apply(i: int) -> None:
        # Distinct compile inputs (minBlockSize is in the artifact key): every model compiles.
        models.apply(model_manifest(f"m{i:04d}", namespace, model_uri, storage, profiles=[PROFILE],
                                    compile={"gpu": {"product": GPU}, "minBlockSize": i + 1}))  # fmt: skip

    with ThreadPoolExecutor(args.apply_threads) as pool:
        list(pool.map(apply, range(args.models)))
    burst_seconds = time.monotonic() - burst_start
    print(f"applied {args.models} models in {burst_seconds:.1f} s", flush=True)

    ready_count = 0
    all_ready: float | None = None
    deadline = burst_start + args.timeout
    last_print = 0.0
    while time.monotonic() < deadline:
        operator.assert_running()
        items = models.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        ready_count = sum(
            1
            for m in items
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in (m.get("status") or {}).get("conditions", [])
            )
        )
        now = time.monotonic()
        if now - last_print >= 30 or ready_count == args.models:
            last_print = now
            rss = sampler.samples[-1][1] / (1 << 20) if sampler.samples else 0
            print(f"  {now - burst_start:6.0f} s: compiles played {player.played}, Ready {ready_count}/{args.models}, "
                  f"operator RSS {rss:.0f} MiB, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        if ready_count == args.models:
            all_ready = now
            break
        time.sleep(10)
    end = time.monotonic()
    footprint = sampler.between(burst_start, end)
    whole = sampler.between(0, end)
    hwm = sampler.peak_hwm
    # Child names -> models, from their labels, before the operator stops.
    job_model = {
        j.metadata.name: j.metadata.labels[names.LABEL_MODEL] for j in models.batch.list_namespaced_job(namespace).items
    }
    deployment_model = {
        d.metadata.name: d.metadata.labels[names.LABEL_MODEL]
        for d in models.apps.list_namespaced_deployment(namespace).items
    }
    sampler.stopped.set()
    player.stop()
    operator.stop()
    log = operator.log()

    result: dict[str, Any] = {
        "namespace": namespace,
        "job_model": job_model,
        "deployment_model": deployment_model,
        "models": args.models,
        "nodes": args.nodes,
        "resync_seconds": args.resync_seconds,
        "concurrency": args.concurrency,
        "apply_threads": args.apply_threads,
        "burst_client_seconds": burst_seconds,
        "ready": ready_count,
        "all_ready_client_seconds": (all_ready - burst_start) if all_ready else None,
        "operator_burst": footprint,
        "operator_whole_run": whole,
        "operator_peak_hwm_mib": hwm / (1 << 20),
        "compiles_played": player.played,
        "player_errors": player.errors[:20],
        "operator_log": {
            "failed reconciles": log.count(" failed (attempt "),
            "tracebacks": log.count("Traceback"),
            "slow reconciles (>1 s, logged)": log.count("reconciled "),
            "errors": sum(1 for line in log.splitlines() if " ERROR " in line),
        },
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/operator_scale.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    (state / "run.json").write_text(json.dumps(result) + "\n")  # what --reanalyse starts from
    events = [e for e in own.audit_events() if e.namespace in (namespace, "")]
    result.update(analyse(events, namespace, job_model, deployment_model))
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(namespace)
    return result


def write_json(path: Path, result: dict[str, Any]) -> None:
    """The results without the name maps (those stay in the state directory's run.json)."""
    kept = {k: v for k, v in result.items() if k not in ("job_model", "deployment_model")}
    path.write_text(json.dumps(kept, indent=1) + "\n")


def reanalyse(state: Path) -> dict[str, Any]:
    result = json.loads((state / "run.json").read_text())
    events = [
        e for e in read_audit_log(state / "cluster" / "logs" / "audit.log") if e.namespace in (result["namespace"], "")
    ]
    result.update(analyse(events, result["namespace"], result["job_model"], result["deployment_model"]))
    return result


def analyse(
    events: list[AuditEvent], namespace: str, job_model: dict[str, str], deployment_model: dict[str, str]
) -> dict[str, Any]:
    """The intervals, the reconciles and the request mix, from the audit log alone."""

    def first(select: Callable[[AuditEvent], str | None]) -> dict[str, datetime.datetime]:
        seen: dict[str, datetime.datetime] = {}
        for e in ordered:
            model = select(e)
            if model is not None and model not in seen:
                seen[model] = e.time
        return seen

    def conditions(e: AuditEvent) -> dict[str, str]:
        status = (e.request_object or {}).get("status") or {}
        return {c.get("type"): c.get("status") for c in status.get("conditions") or []}

    ordered = sorted(events, key=lambda e: e.time)
    ns = [e for e in events if e.namespace == namespace]
    operator = [e for e in events if e.user == OPERATOR_USER]
    applied = first(lambda e: e.name if e.user == ADMIN_USER and e.resource == PLURAL else None)
    job_created = first(
        lambda e: job_model.get(e.name)
        if e.user == OPERATOR_USER and e.resource == "jobs" and not e.subresource and e.verb in ("patch", "create")
        and e.code in (200, 201) else None
    )  # fmt: skip
    job_complete = first(
        lambda e: job_model.get(e.name)
        if e.user == JOB_CONTROLLER and e.subresource == "status" and "True" in (
            conditions(e).get("Complete"), conditions(e).get("SuccessCriteriaMet")) else None
    )  # fmt: skip
    compile_done = first(
        lambda e: job_model.get(e.name.rsplit("-", 1)[0]) if e.user == ADMIN_USER and e.resource == "pods" else None
    )
    deployment_created = first(
        lambda e: deployment_model.get(e.name)
        if e.user == OPERATOR_USER and e.resource == "deployments" and e.verb in ("patch", "create")
        and e.code in (200, 201) else None
    )  # fmt: skip
    ready = first(
        lambda e: e.name
        if e.user == OPERATOR_USER and e.resource == PLURAL and e.subresource == "status"
        and conditions(e).get("Ready") == "True" else None
    )  # fmt: skip
    reconciles = [e for e in operator if e.verb == "get" and e.resource == PLURAL and not e.subresource]

    def seconds(start: dict[str, datetime.datetime], end: dict[str, datetime.datetime]) -> list[float]:
        return [(end[m] - start[m]).total_seconds() for m in start if m in end]

    def summary(values: list[float]) -> dict[str, float]:
        if not values:
            return {"n": 0}
        return {"n": len(values), "p50": statistics.median(values), "p95": percentile(values, 95),
                "max": max(values), "min": min(values)}  # fmt: skip

    first_apply = min(applied.values()) if applied else None
    mix = collections.Counter(
        f"{e.verb} {e.resource or '(discovery)'}{'/' + e.subresource if e.subresource else ''}" for e in operator
    )
    per_model = collections.Counter(e.name for e in reconciles)
    # How long the apiserver took over each of the operator's requests (received -> answered).
    served: dict[str, list[float]] = collections.defaultdict(list)
    for e in operator:
        if e.received is not None and e.verb != "watch":
            served[f"{e.verb} {e.resource or '(discovery)'}{'/' + e.subresource if e.subresource else ''}"].append(
                (e.time - e.received).total_seconds()
            )
    complete_to_deployment = seconds(job_complete, deployment_created)
    return {
        "apply_to_job": summary(seconds(applied, job_created)),
        "job_complete_to_deployment": summary([v for v in complete_to_deployment if v >= 0]),
        "deployment_before_job_complete": summary([-v for v in complete_to_deployment if v < 0]),
        "compile_done_to_deployment": summary(seconds(compile_done, deployment_created)),
        "apply_to_ready": summary(seconds(applied, ready)),
        "all_ready_seconds": (max(ready.values()) - first_apply).total_seconds() if ready and first_apply else None,
        "burst_apiserver_seconds": (max(applied.values()) - first_apply).total_seconds() if first_apply else None,
        "reconciles": len(reconciles),
        "reconciles_per_model": summary([float(n) for n in per_model.values()]),
        "operator_requests": len(operator),
        "requests_per_reconcile": len(operator) / len(reconciles) if reconciles else None,
        "request_mix": dict(mix.most_common()),
        "apiserver_seconds_by_request": {k: summary(v) for k, v in served.items()},
        "operator_errors": sum(1 for e in operator if e.code >= 400),
        "operator_error_codes": dict(collections.Counter(e.code for e in operator if e.code >= 400)),
        "audit_events_in_namespace": len(ns),
    }


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {"node": platform.node(), "cores": os.cpu_count(), "memory_gib": int(mem) >> 20,
            "python": platform.python_version()}  # fmt: skip


def latency(r: dict[str, Any], request: str) -> str:
    s = r.get("apiserver_seconds_by_request", {}).get(request) or {}
    if not s.get("n"):
        return "-"
    return f"{s['p50'] * 1000:.0f} / {s['p95'] * 1000:.0f} / {s['max'] * 1000:.0f}"


def render(r: dict[str, Any]) -> str:
    def row(label: str, s: dict[str, float]) -> str:
        if not s.get("n"):
            return f"| {label} | 0 | - | - | - |"
        return f"| {label} | {s['n']} | {s['p50'] * 1000:.0f} | {s['p95'] * 1000:.0f} | {s['max'] * 1000:.0f} |"

    burst, whole = r["operator_burst"], r["operator_whole_run"]
    lines = [
        f"{r['models']} models, {r['nodes']} KWOK GPU nodes (8 H100 each), operator: {r['concurrency']} workers, "
        f"{r['resync_seconds']:.0f} s resync. Ready: {r['ready']}/{r['models']}.",
        "",
        "| interval (apiserver clock) | n | p50 (ms) | p95 (ms) | max (ms) |",
        "| --- | --- | --- | --- | --- |",
        row("apply -> compile Job created", r["apply_to_job"]),
        row("Job complete -> Deployment created (Deployment after the Job)", r["job_complete_to_deployment"]),
        row("Deployment created before the Job completed, by", r["deployment_before_job_complete"]),
        row("compile done (pod told to exit, manifest stored) -> Deployment created", r["compile_done_to_deployment"]),
        row("apply -> model Ready", r["apply_to_ready"]),
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| burst: first to last apply answered | {r['burst_apiserver_seconds'] or 0:.1f} s |",
        f"| all models Ready (first apply -> last Ready=True write) | "
        f"{r['all_ready_seconds'] if r['all_ready_seconds'] is not None else float('nan'):.0f} s |",
        f"| operator peak RSS (VmHWM, whole run) | {r['operator_peak_hwm_mib']:.0f} MiB |",
        f"| operator peak RSS (sampled, burst to all Ready) | {burst.get('peak_rss_mib', 0):.0f} MiB |",
        f"| operator CPU, burst to all Ready | {burst.get('cpu_seconds', 0):.0f} s in {burst.get('wall_seconds', 0):.0f} s "
        f"(mean {burst.get('mean_cores', 0):.2f} cores, busiest 10 s {burst.get('busiest_10s_cores', 0):.2f}) |",
        f"| operator CPU, whole run (startup included) | {whole.get('cpu_seconds', 0):.0f} s |",
        f"| reconciles (GETs of a model) | {r['reconciles']} ({r['reconciles'] / max(1, r['models']):.1f} per model; "
        f"median {r['reconciles_per_model'].get('p50', 0):.0f}, max {r['reconciles_per_model'].get('max', 0):.0f}) |",
        f"| operator requests | {r['operator_requests']} ({r['operator_errors']} answered >= 400: "
        f"{r['operator_error_codes']}) |",
        f"| apiserver requests per reconcile | {r['requests_per_reconcile'] or 0:.1f} |",
        f"| machine load average (1 min) before / after | {r['load_average_before'][0]:.1f} / "
        f"{r['load_average_after'][0]:.1f} |",
        "",
        "Operator requests by verb and resource:",
        "",
        "| request | count | per reconcile | apiserver time p50 / p95 / max (ms) |",
        "| --- | --- | --- | --- |",
        *(f"| {k} | {v} | {v / max(1, r['reconciles']):.2f} | {latency(r, k)} |" for k, v in r["request_mix"].items()),
        "",
        f"Operator log: {r['operator_log']}; compiles played {r['compiles_played']}"
        + (f"; player errors: {r['player_errors']}" if r["player_errors"] else ""),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
