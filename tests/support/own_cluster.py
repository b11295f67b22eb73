"""A control plane and MinIO of one's own, to break on purpose: the fault tests and the
operator's scale bench start one instead of using the shared `cluster`.

- `OwnCluster.kill/stop/start_again/wait_ready(name)`: SIGKILL or stop a component
  (kube-apiserver, minio, ...) and start it again with the same flags and data.
- The apiserver's audit log records every request of the operator's ServiceAccount
  (nothing else unless `audit_rules` adds to it), so a test or bench counts what the
  operator asks of the apiserver: `operator_requests()`; `audit_events()` is everything
  the log holds, with each request's user, receive time and (for rules at level
  Request) body.
- `gpu_fleet(path, count)`: KWOK's H100 node from hack/kwok/gpu-nodes.yaml, `count` times.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from .binaries import require_binaries
from .cluster import Cluster
from .control_plane import KWOK_DIR, ControlPlane, Ports
from .minio_server import start_minio
from .ports import free_port
from .processes import ProcessSet
from .waiting import wait_for

# Start order; stopped in reverse, whatever was restarted since: an apiserver stopped
# before its clients waits out their watches (15 s, then SIGKILL).
COMPONENTS = ("minio", "etcd", "kube-apiserver", "kwok", "kube-controller-manager", "kube-scheduler")
# The identity operator_support.operator_kubeconfig gives the operator under test.
OPERATOR_USER = "system:serviceaccount:trtaoti-system:trtaoti-operator"


def audit_policy(path: Path, user: str = OPERATOR_USER, extra_rules: Sequence[dict[str, Any]] = ()) -> Path:
    """Metadata (verb, resource, name, time) of each request by `user`, once, when answered.

    `extra_rules` (audit policy rules) come first, and the first rule that matches a
    request decides its level: e.g. a bench that also records its own applies, or a
    controller's status writes with their bodies (level Request)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [*extra_rules, {"level": "Metadata", "users": [user]}, {"level": "None"}],
    }))  # fmt: skip
    return path


def gpu_fleet(path: Path, count: int) -> Path:
    """`count` copies of the first H100 node of hack/kwok/gpu-nodes.yaml (kwok-h100-0..),
    plus its CPU node: a fleet of fake GPU nodes for scale runs."""
    nodes = [n for n in yaml.safe_load_all((KWOK_DIR / "gpu-nodes.yaml").read_text()) if n]
    template = next(
        n for n in nodes if n["metadata"]["labels"].get("nvidia.com/gpu.product") == "NVIDIA-H100-80GB-HBM3"
    )
    fleet = []
    for i in range(count):
        node = copy.deepcopy(template)
        node["metadata"]["name"] = node["metadata"]["labels"]["kubernetes.io/hostname"] = f"kwok-h100-{i}"
        fleet.append(node)
    fleet += [n for n in nodes if "nvidia.com/gpu.present" not in n["metadata"]["labels"]]
    path.write_text(yaml.safe_dump_all(fleet))
    return path


@dataclass
class AuditEvent:
    time: datetime.datetime  # stageTimestamp: when the apiserver answered
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    user: str = ""
    received: datetime.datetime | None = None  # requestReceivedTimestamp
    request_object: dict[str, Any] | None = None  # the body, for rules at level Request and above


def read_audit_log(log: Path) -> list[AuditEvent]:
    """The events of an apiserver's JSON audit log (a line being written is skipped)."""
    events = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        ref = entry.get("objectRef") or {}
        received = entry.get("requestReceivedTimestamp")
        events.append(AuditEvent(
            time=datetime.datetime.fromisoformat(entry["stageTimestamp"]),
            verb=entry["verb"], resource=ref.get("resource", ""), subresource=ref.get("subresource", ""),
            namespace=ref.get("namespace", ""), name=ref.get("name", ""),
            code=int((entry.get("responseStatus") or {}).get("code") or 0),
            user=(entry.get("user") or {}).get("username", ""),
            received=datetime.datetime.fromisoformat(received) if received else None,
            request_object=entry.get("requestObject"),
        ))  # fmt: skip
    return events


@dataclass
class OwnCluster:
    state_dir: Path
    procs: ProcessSet
    plane: ControlPlane
    cluster: Cluster

    def kill(self, name: str) -> None:
        """SIGKILL, as when its node dies or it is OOM-killed."""
        self.procs.kill(name)

    def stop(self, name: str) -> None:
        """SIGTERM (its graceful shutdown), SIGKILL after 15 s."""
        self.procs.stop(name)

    def start_again(self, name: str, timeout: float = 90) -> None:
        """Starts a stopped or killed component as before; returns once it serves."""
        self.procs.start_again(name)
        if name == "kube-apiserver":
            self.plane.wait_apiserver_ready(timeout)
        elif name == "minio":
            url = f"{self.cluster.s3_env['AWS_ENDPOINT_URL']}/minio/health/ready"
            wait_for(lambda: requests.get(url, timeout=1).ok, timeout=timeout, what="MinIO to be ready again",
                     ignore=(requests.RequestException,))  # fmt: skip

    def operator_requests(self) -> list[AuditEvent]:
        """Every request of the operator's ServiceAccount the apiserver has answered so far."""
        return [e for e in self.audit_events() if e.user == OPERATOR_USER]

    def audit_events(self) -> list[AuditEvent]:
        """Every request the audit policy selected that the apiserver has answered so far."""
        return read_audit_log(self.plane.audit_log)

    def pid(self, name: str) -> int | None:
        return self.procs.pid(name)


@contextlib.contextmanager
def own_cluster(
    state_dir: Path,
    *,
    fake_nodes: Path | None = None,
    die_with_parent: bool = True,
    audit_rules: Sequence[dict[str, Any]] = (),
) -> Iterator[OwnCluster]:
    """MinIO + a control plane with KWOK nodes (hack/kwok/gpu-nodes.yaml unless
    `fake_nodes`) and the operator's audit log (plus what `audit_rules` select, see
    audit_policy); everything stopped on exit."""
    bins = require_binaries()
    procs = ProcessSet(state_dir, die_with_parent=die_with_parent)
    try:
        s3 = start_minio(procs, bins, state_dir / "minio", free_port(), free_port())
        ports = Ports(etcd=free_port(), etcd_peer=free_port(), apiserver=free_port(),
                      controller_manager=free_port(), scheduler=free_port())  # fmt: skip
        policy = audit_policy(state_dir / "audit-policy.yaml", extra_rules=audit_rules)
        plane = ControlPlane(state_dir, bins, ports, procs, audit_policy=policy,
                             **({"fake_nodes": fake_nodes} if fake_nodes else {}))  # fmt: skip
        plane.up()
        yield OwnCluster(state_dir, procs, plane, Cluster(str(plane.kubeconfig), plane.server, s3, bins, state_dir))
    finally:
        for name in reversed(COMPONENTS):
            procs.stop(name)
        procs.stop_all()
