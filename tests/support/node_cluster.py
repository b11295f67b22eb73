"""A cluster with a real node: the control plane (apiserver on the node's bridge address),
KWOK's GPU nodes (tainted), MinIO where pods reach it, the images from our Dockerfiles,
and the real node itself. Used by the tests/node fixture and `make dev-cluster REAL_NODE=1`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .binaries import HACK_DIR, require_binaries
from .cluster import Cluster
from .control_plane import ControlPlane, Ports
from .minio_server import start_minio
from .node import NODE_IP, RealNode, check_host, network_down, network_up, tainted_gpu_nodes
from .ports import free_port
from .processes import ProcessSet

NODE_BINARIES = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr")
IMAGES_SCRIPT = HACK_DIR / "build-images.sh"


class ImagesMissing(RuntimeError):
    """One line: which image is not built, and what to run."""


def built_images() -> dict[str, str]:
    """OPERATOR_IMAGE, COMPILER_IMAGE, SERVER_IMAGE, PAUSE_IMAGE for the tree as it is now;
    ImagesMissing unless every one is in local container storage (`make images`)."""
    check = subprocess.run(["bash", str(IMAGES_SCRIPT), "--check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise ImagesMissing(check.stderr.strip() or check.stdout.strip())
    out = subprocess.run(["bash", str(IMAGES_SCRIPT), "--print"], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


@dataclass
class NodeCluster:
    """Starts everything in `start()`; `stop()` undoes it, also after a failed start."""

    state_dir: Path
    procs: ProcessSet
    ports: Ports | None = None
    images: dict[str, str] = field(default_factory=dict)
    cluster: Cluster | None = None
    node: RealNode | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # The host's values of the sysctls the node sets, restored by stop().
    sysctls: dict[str, str] = field(default_factory=dict)

    def start(self) -> Cluster:
        check_host()
        self.images = built_images()
        bins = require_binaries()
        require_binaries(NODE_BINARIES)
        network_up(self.sysctls)
        s3 = start_minio(self.procs, bins, self.state_dir / "minio", free_port(), free_port(), host=NODE_IP)
        ports = self.ports or Ports(
            etcd=free_port(),
            etcd_peer=free_port(),
            apiserver=free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
        )
        plane = ControlPlane(
            self.state_dir, bins, ports, self.procs, api_host=NODE_IP, fake_nodes=tainted_gpu_nodes(self.state_dir)
        )
        plane.up()
        self.timings.update(plane.timings)
        assert plane.pki is not None
        self.node = RealNode(
            self.state_dir,
            bins,
            plane.server,
            plane.pki,
            self.procs,
            images=(self.images["OPERATOR_IMAGE"], self.images["COMPILER_IMAGE"], self.images["SERVER_IMAGE"]),
            pause_image=self.images["PAUSE_IMAGE"],
        )
        self.node.start()
        self.timings.update(self.node.timings)
        self.cluster = Cluster(str(plane.kubeconfig), plane.server, s3, bins, self.state_dir)
        return self.cluster

    def stop(self) -> None:
        try:
            if self.node is not None:
                self.node.stop()
        finally:
            self.procs.stop_all()
            network_down(self.sysctls)
