"""A real Kubernetes node on this machine, joined to a test control plane beside KWOK's
fake GPU nodes: containerd + runc run the pods, the CNI bridge plugin gives them a
network, the kubelet drives them (probes, preStop, graceful termination, volumes) and
kube-proxy routes Services to them (docs/dev-cluster.md).

The network is one bridge the setup creates, `trtaoti0`, with the node's address
NODE_IP on it: the node's InternalIP, where the kubelet serves, and where the apiserver
and MinIO listen so pods reach them. Pods get addresses of POD_SUBNET on that bridge.
A filter rule drops anything pods send past the bridge: no pod reaches outside, and
tests only talk to addresses on this bridge or on loopback.

Needs root (namespaces, mounts, iptables, cgroups). Images come from local container
storage (hack/build-images.sh) and are imported into containerd's `k8s.io` namespace;
containerd's root is kept in the cache between runs, so each image is imported once.
`stop()` removes everything `start()` made: processes, containers, mounts, the bridge,
iptables chains and cgroups.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .control_plane import KWOK_DIR
from .pki import CertPair, Pki, base64_file
from .ports import HOST, free_port
from .processes import ProcessSet, live_recorded
from .waiting import wait_for

NODE_NAME = "trtaoti-node-0"
BRIDGE = "trtaoti0"
NODE_IP = "10.245.0.1"
POD_SUBNET = "10.245.0.0/24"
CGROUP_ROOT = "trtaoti-node"
CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = "/usr/sbin/runc"
NODE_CACHE = Path(os.environ.get("TRTAOTI_NODE_CACHE", Path.home() / ".cache" / "trtaoti" / "node"))
# Images are imported once and kept across runs; everything else a run makes is new.
CONTAINERD_ROOT = NODE_CACHE / "containerd"
# The state directory of the node running now: one real node per machine (one bridge,
# one address, one cgroup root).
OWNER_FILE = NODE_CACHE / "running"
# The filter chain that keeps pod traffic on the bridge, and the prefixes of the chains
# the kubelet, kube-proxy and the CNI plugins create (removed on stop, IPv4 and IPv6).
GUARD_CHAIN = "TRTAOTI-NODE"
KUBE_CHAIN_PREFIXES = ("KUBE-", "CNI-", GUARD_CHAIN)
NODE_LABEL = "trtaoti.dev/real-node"
CONTAINERD_CONFIG = """\
version = 4
root = "{root}"
state = "{state}"
# Nothing from the host's /etc/containerd.
imports = []

[plugins."io.containerd.server.v1.grpc"]
address = "{socket}"

[plugins."io.containerd.server.v1.ttrpc"]
address = "{socket}.ttrpc"

[plugins."io.containerd.shim.v1.manager"]
# At most 42 characters (socket paths are short): one node per machine, so a fixed one.
socket_dir = "/run/trtaoti-node/s"

[plugins."io.containerd.nri.v1.nri"]
disable = true

[plugins."io.containerd.cri.v1.runtime"]
# This sandbox refuses a negative oom_score_adj (runc then fails with "can't get final
# child's PID from pipe"): clamp containers to containerd's own.
restrict_oom_score_adj = true
# Pod network namespaces under the run's state, not the host's /run/netns.
netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".cni]
bin_dirs = ["{cni_bin}"]
conf_dir = "{cni_conf}"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
BinaryName = "{runc}"
SystemdCgroup = false

[plugins."io.containerd.cri.v1.images".pinned_images]
# Upstream's pause image cannot be pulled here: hack/build-images.sh builds this one.
sandbox = "{sandbox}"

[plugins."io.containerd.grpc.v1.cri"]
stream_server_address = "{stream_host}"
stream_server_port = "0"

[plugins."io.containerd.internal.v1.opt"]
path = "{state}/opt"
"""
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
}


class NodeUnavailable(RuntimeError):
    """This machine cannot run a real node (not root, a tool missing); one line says why."""


def check_host() -> None:
    if OWNER_FILE.exists():
        owner = Path(OWNER_FILE.read_text())
        running = [n for n in live_recorded(owner / "pids") if n in ("containerd", "kubelet", "kube-proxy")]
        if running:
            raise NodeUnavailable(
                f"a real node already runs from {owner} ({', '.join(running)}): stop it first (make dev-cluster-down)"
            )
    if os.geteuid() != 0:
        raise NodeUnavailable("a real node needs root (namespaces, mounts, iptables, cgroups)")
    for tool in ("ip", "iptables", "ip6tables", "buildah", RUNC):
        if not shutil.which(tool):
            raise NodeUnavailable(f"{tool} not found: run hack/install-system-deps.sh")
    missing = [p for p in ("bridge", "host-local", "loopback", "portmap") if not (CNI_BIN_DIR / p).exists()]
    if missing:
        raise NodeUnavailable(f"CNI plugins {missing} missing in {CNI_BIN_DIR}: run hack/install-system-deps.sh")
    if not Path("/proc/sys/net/bridge").is_dir():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
        if not Path("/proc/sys/net/bridge").is_dir():
            raise NodeUnavailable("br_netfilter is not available: Services could not reach pods on the same bridge")


def _run(*argv: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, input=input, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}"
        )
    return done


# --- the network ------------------------------------------------------------------------


def network_up(saved_sysctls: dict[str, str]) -> None:
    """The bridge with NODE_IP, forwarding and bridge netfilter on, and the guard chain."""
    network_down()
    for key, value in SYSCTLS.items():
        path = Path("/proc/sys") / key
        saved_sysctls[key] = path.read_text().strip()
        path.write_text(value)
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    # Pods talk to the bridge (each other, NODE_IP) and nothing else: forwarded traffic
    # that enters from the bridge and would leave through another link is dropped.
    _run("iptables", "-N", GUARD_CHAIN)
    _run("iptables", "-A", GUARD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
    _run("iptables", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)


def network_down(saved_sysctls: dict[str, str] | None = None) -> None:
    """Removes the bridge and every KUBE-/CNI-/guard chain; restores the sysctls."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "del", BRIDGE, check=False)
    for tool in ("iptables", "ip6tables"):
        _remove_chains(tool)
    for key, value in (saved_sysctls or {}).items():
        (Path("/proc/sys") / key).write_text(value)


def _ours(chain: str) -> bool:
    return chain.startswith(KUBE_CHAIN_PREFIXES)


def _remove_chains(tool: str) -> None:
    for table in ("filter", "nat", "mangle"):
        listing = _run(tool, "-t", table, "-S", check=False).stdout.decode().splitlines()
        # Rules in built-in chains that jump to ours first, then our chains themselves.
        for rule in listing:
            words = rule.split()
            if words[:1] == ["-A"] and not _ours(words[1]) and "-j" in words and _ours(words[words.index("-j") + 1]):
                _run(tool, "-t", table, "-D", *words[1:], check=False)
        chains = [line.split()[1] for line in listing if line.startswith("-N ") and _ours(line.split()[1])]
        for chain in chains:
            _run(tool, "-t", table, "-F", chain, check=False)
        for chain in chains:
            _run(tool, "-t", table, "-X", chain, check=False)


# --- cgroups and mounts --------------------------------------------------------------------


def _cgroup_hierarchies() -> list[Path]:
    """The v1 hierarchies the kubelet uses (the unified mount of hybrid mode has no controllers)."""
    root = Path("/sys/fs/cgroup")
    return [p for p in sorted(root.iterdir()) if p.is_dir() and p.name != "unified" and not p.is_symlink()]


def cgroups_up() -> None:
    """`cgroupRoot` must exist before the kubelet starts; cpuset needs its cpus and mems."""
    for hierarchy in _cgroup_hierarchies():
        directory = hierarchy / CGROUP_ROOT
        directory.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset" or (hierarchy / "cpuset.cpus").exists():
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (directory / name).read_text().strip():
                    (directory / name).write_text((hierarchy / name).read_text())


def kill_strays(bin_dir: Path) -> None:
    """SIGKILLs what outlived its containerd: processes in the node's cgroups, and runc
    shims (they daemonize by design) started from `bin_dir`."""
    pids: set[int] = set()
    for hierarchy in _cgroup_hierarchies():
        for procs in (hierarchy / CGROUP_ROOT).rglob("cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
    shim = str(bin_dir / "containerd-shim-runc-v2")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace") == shim:
                    pids.add(int(entry.name))
            except OSError:
                continue
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def cgroups_down() -> None:
    """Removes the node's cgroups, deepest first (they are empty once every task is gone)."""
    for hierarchy in _cgroup_hierarchies():
        top = hierarchy / CGROUP_ROOT
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir_cgroup(directory)
        _rmdir_cgroup(top)


def _rmdir_cgroup(directory: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last tasks exit
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


def unmount_under(*roots: Path) -> None:
    """Lazily unmounts every mount below `roots`, deepest first (pod volumes, rootfs, netns)."""
    prefixes = tuple(str(r.resolve()) + "/" for r in roots)
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(prefixes):
            mounts.append(target)
    for target in sorted(set(mounts), key=len, reverse=True):
        _run("umount", "-l", target, check=False)


# --- the node --------------------------------------------------------------------------------


def _kubeconfig(path: Path, server: str, ca: CertPair, client: CertPair) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "trtaoti",
                        "cluster": {"server": server, "certificate-authority-data": base64_file(ca.cert)},
                    }
                ],
                "users": [
                    {
                        "name": "node",
                        "user": {
                            "client-certificate-data": base64_file(client.cert),
                            "client-key-data": base64_file(client.key),
                        },
                    }
                ],
                "contexts": [{"name": "trtaoti", "context": {"cluster": "trtaoti", "user": "node"}}],
                "current-context": "trtaoti",
            }
        )
    )
    path.chmod(0o600)
    return path


def tainted_gpu_nodes(state_dir: Path) -> Path:
    """KWOK's fake nodes for a cluster with a real node: the GPU nodes only, tainted as
    GPU nodes usually are (nvidia.com/gpu NoSchedule, which GPU pods tolerate), so CPU
    pods land on the real node and nowhere else."""
    nodes = [
        n
        for n in yaml.safe_load_all((KWOK_DIR / "gpu-nodes.yaml").read_text())
        if n and n["metadata"].get("labels", {}).get("nvidia.com/gpu.present") == "true"
    ]
    for node in nodes:
        node.setdefault("spec", {})["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    path = state_dir / "gpu-nodes-tainted.yaml"
    path.write_text(yaml.safe_dump_all(nodes))
    return path


@dataclass
class RealNode:
    """containerd, kubelet and kube-proxy for NODE_NAME; `start()` returns once it is Ready."""

    state_dir: Path
    bin_dir: Path
    server: str  # the apiserver URL (on NODE_IP)
    pki: Pki
    procs: ProcessSet
    images: tuple[str, ...]  # local image references to make available to pods
    pause_image: str
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_cleanup(cls, state_dir: Path, bin_dir: Path, procs: ProcessSet) -> RealNode:
        """A handle on a node another process started, enough for stop()."""
        return cls(state_dir, bin_dir, server="", pki=None, procs=procs, images=(), pause_image="")  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        # containerd looks the shim up on PATH; the kubelet and kube-proxy run iptables,
        # mount and friends from /usr/sbin.
        self.env = {"PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        self.dir = self.state_dir / "node"
        self.containerd_state = self.dir / "containerd-state"
        self.socket = self.dir / "containerd.sock"
        self.kubelet_root = self.dir / "kubelet"

    # -- lifecycle --

    def start(self) -> None:
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        CONTAINERD_ROOT.mkdir(parents=True, exist_ok=True)
        OWNER_FILE.write_text(str(self.state_dir))
        kill_strays(self.bin_dir)
        cgroups_up()
        self._write_cni_config()
        self._start_containerd()
        self._remove_leftover_containers()
        self._import_images()
        self.timings["images"] = time.monotonic() - t0
        self._start_kubelet()
        self._start_kube_proxy()
        self._wait_ready()
        self.timings["node ready"] = time.monotonic() - t0

    def stop(self) -> None:
        """Stops the node and removes what it made. Safe to call after a failed start."""
        for name in ("kube-proxy", "kubelet"):
            self.procs.stop(name)
        if self.socket.exists():
            self._remove_leftover_containers()
        self.procs.stop("containerd")
        kill_strays(self.bin_dir)
        unmount_under(self.dir, CONTAINERD_ROOT)
        self._cleanup_kube_proxy()
        cgroups_down()
        if OWNER_FILE.exists() and OWNER_FILE.read_text() == str(self.state_dir):
            OWNER_FILE.unlink()

    # -- containerd --

    def ctr(self, *args: str, check: bool = True) -> str:
        return _run(
            str(self.bin_dir / "ctr"), "--address", str(self.socket), "--namespace", "k8s.io", *args, check=check
        ).stdout.decode()

    def _start_containerd(self) -> None:
        config = self.dir / "containerd.toml"
        config.write_text(
            CONTAINERD_CONFIG.format(
                root=CONTAINERD_ROOT,
                state=self.containerd_state,
                socket=self.socket,
                cni_bin=CNI_BIN_DIR,
                cni_conf=self.dir / "cni",
                runc=RUNC,
                sandbox=self.pause_image,
                stream_host=HOST,
            )
        )
        self.procs.start("containerd", [str(self.bin_dir / "containerd"), "--config", str(config)], env=self.env)

        def answers() -> bool:
            self._alive("containerd")
            return self.socket.exists() and self.ctr("version", check=False) != ""

        wait_for(answers, timeout=60, what="containerd to answer")

    def _remove_leftover_containers(self) -> None:
        """Containers and sandboxes of an earlier run that did not stop cleanly."""
        for task in self.ctr("tasks", "ls", "--quiet", check=False).split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 30
        while self.ctr("tasks", "ls", "--quiet", check=False).split() and time.monotonic() < deadline:
            for task in self.ctr("tasks", "ls", "--quiet", check=False).split():
                self.ctr("tasks", "delete", "--force", task, check=False)
            time.sleep(0.2)
        containers = self.ctr("containers", "ls", "--quiet", check=False).split()
        if containers:
            self.ctr("containers", "delete", *containers, check=False)

    def _import_images(self) -> None:
        """Each image not yet in containerd is streamed over as a docker-archive
        (uncompressed: nothing to compress on one machine, and no temporary copy).
        Earlier keys' images go first: a key change brings gigabytes of new layers, and
        old and new side by side once filled the disk."""
        self._remove_stale_images({*self.images, self.pause_image})
        present = set(self.ctr("images", "ls", "--quiet").split())
        for image in (*self.images, self.pause_image):
            if image in present:
                continue
            push = subprocess.Popen(
                ["buildah", "push", "--quiet", image, f"docker-archive:/dev/stdout:{image}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            imported = subprocess.run(
                [
                    str(self.bin_dir / "ctr"),
                    "--address",
                    str(self.socket),
                    "--namespace",
                    "k8s.io",
                    "images",
                    "import",
                    "-",
                ],
                stdin=push.stdout,
                capture_output=True,
                check=False,
            )
            push.stdout.close()
            pushed = push.wait()
            if pushed != 0 or imported.returncode != 0:
                raise RuntimeError(
                    f"importing {image} into containerd failed: "
                    f"{push.stderr.read().decode(errors='replace').strip()} "
                    f"{imported.stderr.decode(errors='replace').strip()}"
                )
        self._remove_stale_images({*self.images, self.pause_image})

    def _remove_stale_images(self, wanted: set[str]) -> None:
        """Earlier keys' images only take disk (gigabytes each). The CRI plugin also names
        each image by its id (`sha256:...`): that name goes too, or containerd keeps the
        blobs and snapshots alive."""
        targets = {}
        for line in self.ctr("images", "ls").splitlines()[1:]:
            words = line.split()
            if len(words) >= 3:
                targets[words[0]] = words[2]  # REF TYPE DIGEST ...
        kept = {targets[name] for name in wanted if name in targets}
        stale = [
            name
            for name, digest in targets.items()
            if name not in wanted and digest not in kept and name.startswith(("localhost/trtaoti/", "sha256:"))
        ]
        if stale:
            self.ctr("images", "rm", "--sync", *stale, check=False)

    # -- CNI --

    def _write_cni_config(self) -> None:
        directory = self.dir / "cni"
        directory.mkdir(exist_ok=True)
        (directory / "10-trtaoti.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "trtaoti",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,
                            # A pod reaching itself through its own Service comes back on its port.
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "dataDir": str(self.dir / "cni-ipam"),
                                "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )

    # -- kubelet --

    def _start_kubelet(self) -> None:
        serving = self.pki.issue(
            "kubelet-serving", f"system:node:{NODE_NAME}", ("system:nodes",), server_hosts=(NODE_IP, NODE_NAME)
        )
        client = self.pki.issue("kubelet-client", f"system:node:{NODE_NAME}", ("system:nodes",))
        kubeconfig = _kubeconfig(self.dir / "kubelet.kubeconfig", self.server, self.pki.ca, client)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # cgroup v1 (hybrid) on these machines; refused by default since 1.35.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": NODE_IP,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": HOST,
            "healthzPort": free_port(),
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            # Only clients with a certificate of the cluster's CA (the apiserver, for logs
            # and exec) get in; with no webhook, the kubelet needs no API grants of its own.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.pki.ca.cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            # The host's resolv.conf names resolvers pods may not reach; there is no cluster DNS.
            "resolvConf": "",
            # Out of the host's /var/log and /usr/libexec: everything under the run's state.
            "podLogsDir": str(self.dir / "pod-logs"),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            "failSwapOn": False,
            # A shared development disk: never evict test pods or collect their images.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "nodeStatusReportFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
            # The sync loop reacts to pod events; this bounds the rest (probes are their own).
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
        }
        config_path = self.dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self.procs.start(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={config_path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--node-labels={NODE_LABEL}=true",
                "--v=1",
            ],
            env=self.env,
        )

    def _start_kube_proxy(self) -> None:
        client = self.pki.issue("kube-proxy", "system:kube-proxy")
        kubeconfig = _kubeconfig(self.dir / "kube-proxy.kubeconfig", self.server, self.pki.ca, client)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "clusterCIDR": POD_SUBNET,
            "healthzBindAddress": f"{HOST}:{free_port()}",
            "metricsBindAddress": f"{HOST}:{free_port()}",
            # Leave the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        self.kube_proxy_config = self.dir / "kube-proxy.yaml"
        self.kube_proxy_config.write_text(yaml.safe_dump(config))
        self.procs.start(
            "kube-proxy",
            [str(self.bin_dir / "kube-proxy"), f"--config={self.kube_proxy_config}", "--v=1"],
            env=self.env,
        )

    def _cleanup_kube_proxy(self) -> None:
        proxy = self.bin_dir / "kube-proxy"
        if proxy.exists():
            _run(str(proxy), "--cleanup", "--v=0", check=False)

    # -- readiness --

    def _alive(self, name: str) -> bool:
        code = self.procs.exited().get(name)
        if code is not None:
            tail = self.procs.log_path(name).read_text(errors="replace").strip().splitlines()[-8:]
            raise RuntimeError(f"{name} exited with code {code}:\n  " + "\n  ".join(tail))
        return True

    def _wait_ready(self) -> None:
        kubeconfig = self.state_dir / "kubeconfig"
        kubectl = str(self.bin_dir / "kubectl")

        def ready() -> bool:
            for name in ("containerd", "kubelet", "kube-proxy"):
                self._alive(name)
            done = _run(kubectl, f"--kubeconfig={kubeconfig}", "get", "node", NODE_NAME, "-o", "json", check=False)
            if done.returncode != 0:
                return False
            conditions = json.loads(done.stdout)["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(ready, timeout=120, what=f"node {NODE_NAME} Ready")
