"""`python -m support.devcluster up|down|status` (what hack/dev-cluster.sh runs).

`up` starts MinIO and the control plane in the background with fixed loopback ports and
writes `.dev/kubeconfig` and `.dev/s3.env`; on any failure it stops what it started and
prints one line. `up --real-node` adds a real kubelet node running our images
(support/node.py; root, `make images`): the apiserver and MinIO then listen on the node's
bridge address instead of loopback. `down` stops every process recorded under
`.dev/pids` and removes what a real node made (containers, mounts, bridge, iptables
chains, cgroups).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .binaries import REPO_ROOT, BinariesMissing, require_binaries
from .control_plane import ControlPlane, Ports, fresh_state_dir
from .minio_server import start_minio
from .node import NODE_IP, NodeUnavailable, RealNode, network_down, unmount_under
from .node_cluster import ImagesMissing, NodeCluster
from .ports import PortBusy, ensure_free
from .processes import ProcessSet, live_recorded, stop_recorded

DEV_DIR = REPO_ROOT / ".dev"


def dev_ports() -> tuple[Ports, int, int]:
    base = int(os.environ.get("TRTAOTI_DEV_PORT_BASE", "16000"))
    return (
        Ports(
            etcd=base + 379,
            etcd_peer=base + 380,
            apiserver=base + 443,
            controller_manager=base + 257,
            scheduler=base + 259,
        ),
        base + 900,  # MinIO S3 API
        base + 901,  # MinIO console (browser off; MinIO still binds it)
    )


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


REAL_NODE_MARK = "real-node.json"  # in the state dir: what `down` needs to undo a real node


def up(state: Path, real_node: bool = False) -> int:
    running = live_recorded(state / "pids")
    if running:
        print(
            f"a dev cluster is already running from {state} ({', '.join(running)}): make dev-cluster-down first",
            file=sys.stderr,
        )
        return 1
    bins = require_binaries()
    ports, s3_port, console_port = dev_ports()
    ensure_free({**ports.as_dict(), "minio": s3_port, "minio console": console_port})
    unmount_under(state / "node")  # a real node that crashed; its files are cleared next
    fresh_state_dir(state)
    if real_node:
        return _up_with_real_node(state, ports)
    procs = ProcessSet(state, die_with_parent=False)
    started = time.monotonic()
    try:
        s3 = start_minio(procs, bins, state / "minio", s3_port, console_port)
        write_env_file(state / "s3.env", s3)
        plane = ControlPlane(state, bins, ports, procs)
        plane.up()
    except BaseException:
        procs.stop_all()
        raise
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in plane.timings.items())
    print(
        f"dev cluster ready in {time.monotonic() - started:.1f}s ({phases}): "
        f"KUBECONFIG={plane.kubeconfig} ({plane.server}); S3 env in {state / 's3.env'}; logs in {state / 'logs'}"
    )
    return 0


def _up_with_real_node(state: Path, ports: Ports) -> int:
    started = time.monotonic()
    cluster = NodeCluster(state, ProcessSet(state, die_with_parent=False), ports=ports)
    try:
        handle = cluster.start()
    except BaseException:
        cluster.stop()
        raise
    (state / REAL_NODE_MARK).write_text(json.dumps({"sysctls": cluster.sysctls, "bin_dir": str(handle.bin_dir)}))
    write_env_file(state / "s3.env", handle.s3_env)
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in cluster.timings.items())
    print(
        f"dev cluster with a real node ready in {time.monotonic() - started:.1f}s ({phases}): "
        f"KUBECONFIG={handle.kubeconfig} ({handle.server}); node {NODE_IP}; images {cluster.images}; "
        f"S3 env in {state / 's3.env'}; logs in {state / 'logs'}"
    )
    return 0


def down(state: Path) -> int:
    mark = state / REAL_NODE_MARK
    if mark.exists():
        recorded = json.loads(mark.read_text())
        node = RealNode.for_cleanup(state, Path(recorded["bin_dir"]), ProcessSet(state, die_with_parent=False))
        node.stop()
    stopped = stop_recorded(state / "pids")
    if mark.exists():
        network_down(recorded["sysctls"])
        mark.unlink()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing running")
    return 0


def status(state: Path) -> int:
    running = live_recorded(state / "pids")
    print(f"running: {', '.join(running)}" if running else "not running")
    return 0 if running else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev-cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEV_DIR)
    parser.add_argument("--real-node", action="store_true", help="up: add a real kubelet node (root, make images)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.state_dir, real_node=args.real_node)
        return {"down": down, "status": status}[args.command](args.state_dir)
    except (BinariesMissing, PortBusy, NodeUnavailable, ImagesMissing) as exc:
        print(exc, file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - one line for the user, details are in the logs
        print(f"dev-cluster {args.command} failed: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
