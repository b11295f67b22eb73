"""The reconcile rate of a model with a lasting problem, over minutes (issue #15).

    python bench/reconcile_rate.py [--duration 600] [--resync-seconds 10] [--window 30]
                                   [--with-old-queue] [--json out.json]

One model whose storage Secret never comes: each reconcile reports SecretNotFound and
asks to look again in 30 s (nothing in the cluster announces the Secret's arrival),
while the resync enqueues it every `--resync-seconds`. The operator runs as a
subprocess (`trtaoti operator`, least-privilege ServiceAccount) against a control
plane of its own (tests/support/own_cluster.py); its reconciles are counted from the
apiserver's audit log (each starts with one GET of its model) per `--window` seconds.
Flat means every window holds window/resync reconciles, give or take one (a window
edge), with no upward trend.

`--with-old-queue` runs, side by side in a second namespace, a second operator that is
the same tree except for trtaoti/operator/workqueue.py as it was before commit c66c3ea
(one timer per "look again" request, never deduplicated): the behaviour that fix
removed, measured on the same cluster at the same time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This checkout's package, here and in the operator subprocesses: the shared venv's
# editable install may point at another checkout.
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests"), str(REPO / "tests" / "cluster")]

from kubernetes import client  # noqa: E402

from operator_support import (  # noqa: E402
    Models,
    OperatorProcess,
    install_crd,
    model_manifest,
    operator_kubeconfig,
    storage_secret,
    storage_uri,
    upload_model,
)
from support.own_cluster import OwnCluster, own_cluster  # noqa: E402
from support.waiting import wait_for  # noqa: E402
from trtaoti.api.models import PLURAL  # noqa: E402

FIX_COMMIT = "c66c3ea"  # "Work queue: at most one pending delayed run per model"
MODEL = "stuck"
PROFILE = {"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 1}


def old_queue_tree(work: Path) -> Path:
    """A copy of this tree's operator package with workqueue.py from before the fix."""
    tree = work / "old-queue" / "operator"
    shutil.copytree(REPO / "operator" / "trtaoti", tree / "trtaoti", ignore=shutil.ignore_patterns("__pycache__"))
    old = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{FIX_COMMIT}^:operator/trtaoti/operator/workqueue.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (tree / "trtaoti" / "operator" / "workqueue.py").write_text(old)
    return tree


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds measured")
    parser.add_argument("--resync-seconds", type=float, default=10)
    parser.add_argument("--window", type=float, default=30, help="seconds per count")
    parser.add_argument("--with-old-queue", action="store_true", help="also run the pre-fix work queue, side by side")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trtaoti-reconcile-rate-"))
    print(f"state and logs in {work}", flush=True)
    with own_cluster(work / "cluster") as own:
        result = measure(own, args, work)
    result.update(
        command="python bench/reconcile_rate.py " + " ".join(sys.argv[1:]),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=platform.node(),
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result))
    return 0 if result["variants"]["current"]["flat"] else 1


def measure(own: OwnCluster, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    install_crd(own.cluster)
    identity = operator_kubeconfig(own.cluster, work / "operator.kubeconfig")
    variants: dict[str, dict[str, str]] = {"current": {"PYTHONPATH": str(REPO / "operator")}}
    if args.with_old_queue:
        variants["pre-fix queue"] = {"PYTHONPATH": str(old_queue_tree(work))}

    started: dict[str, tuple[str, OperatorProcess]] = {}
    api = own.cluster.api_client()
    core = client.CoreV1Api(api)
    try:
        for label, env in variants.items():
            ns = f"rate-{secrets.token_hex(3)}"
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            storage_secret(own.cluster, ns)  # there is one; the model names another
            manifest = model_manifest(MODEL, ns, upload_model(own.cluster, ns), storage_uri(own.cluster, ns),
                                      profiles=[PROFILE])  # fmt: skip
            manifest["spec"]["storage"]["secretName"] = "never-created"
            operator = OperatorProcess(identity, work / f"operator-{ns}.log", [ns], resync_seconds=args.resync_seconds,
                                       env=env).start()  # fmt: skip
            Models(own.cluster, ns).apply(manifest)
            started[label] = (ns, operator)
        for label, (ns, operator) in started.items():
            Models(own.cluster, ns).wait_condition(MODEL, "Compiled", "False", reason="SecretNotFound", timeout=90)
            operator.assert_running()
            print(f"{label}: operator pid {operator.proc and operator.proc.pid} in {ns}, model SecretNotFound",
                  flush=True)  # fmt: skip

        start = datetime.datetime.now(datetime.UTC)
        window = datetime.timedelta(seconds=args.window)
        windows = int(args.duration // args.window)
        rss_start = {label: rss_mib(op.proc.pid) for label, (_, op) in started.items() if op.proc}
        for i in range(windows):
            # Sleeping is the measurement here: the windows are wall-clock time.
            time.sleep(max(0.0, (start + (i + 1) * window - datetime.datetime.now(datetime.UTC)).total_seconds()))
            counts = counts_per_window(own, started, start, window, i + 1)
            print(f"  window {i + 1}/{windows}: " + ", ".join(f"{k} {v[-1]}" for k, v in counts.items()), flush=True)
        # The last window closes with the first look after it (an audit event is written when answered).
        end = start + windows * window
        wait_for(lambda: all(any(t >= end for t in looks(own, ns)) for ns, _ in started.values()),
                 timeout=args.resync_seconds * 3 + 30, interval=1, what="a look after the last window")  # fmt: skip
        counts = counts_per_window(own, started, start, window, windows)
        rss_end = {label: rss_mib(op.proc.pid) for label, (_, op) in started.items() if op.proc}
        for _, operator in started.values():
            operator.assert_running()
    finally:
        for _, operator in started.values():
            operator.stop()

    expected = args.window / args.resync_seconds
    out: dict[str, Any] = {}
    for label, series in counts.items():
        ns, operator = started[label]
        third = max(1, len(series) // 3)
        trend = sum(series[-third:]) / third - sum(series[:third]) / third
        out[label] = {
            "namespace": ns,
            "counts": series,
            "min": min(series),
            "max": max(series),
            "first_third_mean": sum(series[:third]) / third,
            "last_third_mean": sum(series[-third:]) / third,
            "flat": all(abs(n - expected) <= 1 for n in series) and trend <= 0.5,
            "operator_rss_mib_start_end": [rss_start.get(label), rss_end.get(label)],
            "failed_reconciles_logged": operator.log().count(" failed (attempt "),
        }
    return {
        "duration_seconds": windows * args.window,
        "window_seconds": args.window,
        "resync_seconds": args.resync_seconds,
        "expected_per_window": expected,
        "variants": out,
    }


def looks(own: OwnCluster, namespace: str) -> list[datetime.datetime]:
    """When the operator began each reconcile of the model (its GET, as answered)."""
    return [e.time for e in own.operator_requests()
            if e.verb == "get" and e.resource == PLURAL and not e.subresource
            and e.namespace == namespace and e.name == MODEL]  # fmt: skip


def counts_per_window(
    own: OwnCluster,
    started: dict[str, tuple[str, OperatorProcess]],
    start: datetime.datetime,
    window: datetime.timedelta,
    windows: int,
) -> dict[str, list[int]]:
    series = {}
    for label, (ns, _) in started.items():
        times = looks(own, ns)
        series[label] = [sum(1 for t in times if start + i * window <= t < start + (i + 1) * window)
                         for i in range(windows)]  # fmt: skip
    return series


def render(r: dict[str, Any]) -> str:
    lines = [
        f"One model with a missing storage Secret, resync {r['resync_seconds']:.0f} s, the reconciler's own "
        f"retry 30 s; reconciles per {r['window_seconds']:.0f} s over {r['duration_seconds'] / 60:.0f} min "
        f"(expected {r['expected_per_window']:.0f} per window from the resync alone).",
        "",
        "| operator | reconciles per window | min | max | mean, first third | mean, last third | flat | RSS start -> end (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, v in r["variants"].items():
        rss = v["operator_rss_mib_start_end"]
        lines.append(
            f"| {label} | {' '.join(map(str, v['counts']))} | {v['min']} | {v['max']} | "
            f"{v['first_third_mean']:.1f} | {v['last_third_mean']:.1f} | {'yes' if v['flat'] else 'NO'} | "
            f"{rss[0]:.0f} -> {rss[1]:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
