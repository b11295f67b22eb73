"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK (fake kubelets) with the fake GPU nodes from hack/kwok/.

Everything binds to 127.0.0.1, except the apiserver of a cluster with a real node
(`api_host`, support/node.py): pods reach it on the node's bridge address, through the
`kubernetes` Service. The apiserver runs as shipped: RBAC + Node authorization,
ServiceAccount tokens signed with a local key, the default admission chain (PodSecurity
included).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3
import yaml

from .binaries import HACK_DIR
from .pki import CertPair, Pki, base64_file
from .ports import HOST
from .processes import ProcessSet
from .waiting import wait_for

KWOK_DIR = HACK_DIR / "kwok"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node=fake"


@dataclass
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    def as_dict(self) -> dict[str, int]:
        return {
            "etcd": self.etcd,
            "etcd peer": self.etcd_peer,
            "kube-apiserver": self.apiserver,
            "kube-controller-manager": self.controller_manager,
            "kube-scheduler": self.scheduler,
        }


@dataclass
class ControlPlane:
    state_dir: Path
    bin_dir: Path
    ports: Ports
    procs: ProcessSet
    # Where the apiserver listens and what it advertises: loopback, or the real node's
    # bridge address so pods reach it (support/node.py).
    api_host: str = HOST
    # The fake nodes KWOK plays (a file of Node objects).
    fake_nodes: Path = KWOK_DIR / "gpu-nodes.yaml"
    timings: dict[str, float] = field(default_factory=dict)
    pki: Pki | None = None
    # An audit policy file: the apiserver then logs what it selects to `audit_log`
    # (JSON lines), e.g. every request of one client, to count them.
    audit_policy: Path | None = None
    _admin: CertPair | None = field(default=None, init=False, repr=False)

    @property
    def server(self) -> str:
        return f"https://{self.api_host}:{self.ports.apiserver}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.procs.log_dir / "audit.log"

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def up(self) -> None:
        """Starts every component and returns once nodes are Ready and controllers work."""
        t0 = time.monotonic()
        pki = self.pki = Pki(self.state_dir / "pki")
        serving = pki.issue(
            "apiserver",
            "kube-apiserver",
            server_hosts=(
                self.api_host,
                HOST,
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        sa = pki.service_account_keys()
        admin = self._admin = pki.issue("admin", "trtaoti-admin", ("system:masters",))
        self._write_kubeconfig(self.kubeconfig, pki.ca, admin)
        kcm_kc = self._write_kubeconfig(
            self.state_dir / "controller-manager.kubeconfig",
            pki.ca,
            pki.issue("controller-manager", "system:kube-controller-manager"),
        )
        sched_kc = self._write_kubeconfig(
            self.state_dir / "scheduler.kubeconfig", pki.ca, pki.issue("scheduler", "system:kube-scheduler")
        )
        # KWOK plays every kubelet (nodes, leases, pod status for all namespaces); there is
        # no narrower built-in role for that, so it runs as an admin, as kwokctl does.
        kwok_kc = self._write_kubeconfig(
            self.state_dir / "kwok.kubeconfig", pki.ca, pki.issue("kwok", "kwok-controller", ("system:masters",))
        )
        self.timings["certificates"] = time.monotonic() - t0

        self._start_etcd()
        self._start_apiserver(pki, serving, sa)
        self._start_kwok(kwok_kc)  # waits for the apiserver by itself
        self._wait_apiserver(admin, pki.ca)
        self.timings["apiserver ready"] = time.monotonic() - t0
        # Not earlier: they exit when RBAC's bootstrap roles are not there yet.
        self._start_controller_manager(kcm_kc, pki, sa)
        self._start_scheduler(sched_kc)
        self.kubectl_apply(self.fake_nodes)
        self._wait_components(admin, pki.ca, t0)

    # --- components -------------------------------------------------------------------

    def _start_etcd(self) -> None:
        data = self.state_dir / "etcd"
        peer = f"http://{HOST}:{self.ports.etcd_peer}"
        client = f"http://{HOST}:{self.ports.etcd}"
        self.procs.start(
            "etcd",
            [
                self._bin("etcd"),
                "--name=trtaoti",
                f"--data-dir={data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=trtaoti={peer}",
                "--initial-cluster-state=new",
                # Throwaway test data: skipping fsync makes every apiserver write much cheaper.
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
            ],
        )

    def _start_apiserver(self, pki: Pki, serving: CertPair, sa: CertPair) -> None:
        if self.api_host == HOST:
            # Loopback may not be published as the kubernetes Service endpoint; nothing in
            # a cluster without a real node reaches the apiserver through that Service.
            node_flags = ["--endpoint-reconciler-type=none"]
        else:
            # The lease reconciler publishes api_host, so pods reach the apiserver through
            # the Service. For `kubectl logs/exec`: the apiserver's identity at the kubelet,
            # which it reaches by InternalIP (node names do not resolve here).
            kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
            node_flags = [
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={pki.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        self.procs.start(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://{HOST}:{self.ports.etcd}",
                f"--bind-address={self.api_host}",
                f"--advertise-address={self.api_host}",
                f"--secure-port={self.ports.apiserver}",
                f"--cert-dir={self.state_dir / 'pki' / 'generated'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--authorization-mode=Node,RBAC",
                # Privileged pods are allowed cluster-wide so PodSecurity admission, per
                # namespace, is what decides (as on a real cluster).
                "--allow-privileged=true",
                "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                *node_flags,
                *(
                    [
                        f"--audit-policy-file={self.audit_policy}",
                        f"--audit-log-path={self.audit_log}",
                        "--audit-log-format=json",
                        "--audit-log-mode=blocking",
                    ]
                    if self.audit_policy
                    else []
                ),
                "--profiling=false",
                "--v=1",
            ],
        )

    def _start_controller_manager(self, kubeconfig: Path, pki: Pki, sa: CertPair) -> None:
        self.procs.start(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={self.ports.controller_manager}",
                f"--cert-dir={self.state_dir / 'pki' / 'generated'}",
                "--leader-elect=false",
                # Each controller acts as its own ServiceAccount, so RBAC is exercised as in production.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={pki.ca.cert}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                "--controllers=*",
                # Client-side rate limits, tuned for a shared cluster, dominate start-up here.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
                "--v=1",
            ],
        )

    def _start_scheduler(self, kubeconfig: Path) -> None:
        self.procs.start(
            "kube-scheduler",
            [
                self._bin("kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={self.ports.scheduler}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )

    def _start_kwok(self, kubeconfig: Path) -> None:
        # Stages are passed explicitly (KWOK v0.8 has no built-in defaults): upstream
        # node-initialize, heartbeat-with-lease, pod-ready, pod-delete, and our own
        # annotation-driven pod-succeed/pod-fail instead of upstream pod-complete.
        config = self.state_dir / "kwok.yaml"
        with config.open("w") as out:
            for name in ("node-stages.yaml", "pod-stages.yaml", "pod-outcome-stages.yaml"):
                out.write((KWOK_DIR / name).read_text().rstrip() + "\n---\n")
        self.procs.start(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={kubeconfig}",
                f"--config={config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}",
                f"--cidr={POD_CIDR}",
                f"--node-ip={HOST}",
                "--node-lease-duration-seconds=40",
            ],
        )

    # --- readiness -------------------------------------------------------------------

    def _check_alive(self) -> None:
        dead = self.procs.exited()
        if dead:
            name, code = next(iter(dead.items()))
            log = self.procs.log_path(name)
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
            raise RuntimeError(f"{name} exited with code {code} (log {log}):\n  " + "\n  ".join(tail))

    def _session(self, client: CertPair, ca: CertPair) -> requests.Session:
        s = requests.Session()
        # Otherwise REQUESTS_CA_BUNDLE from the environment silently replaces `verify`.
        s.trust_env = False
        s.cert = (str(client.cert), str(client.key))
        s.verify = str(ca.cert)
        return s

    def _wait_apiserver(self, admin: CertPair, ca: CertPair, timeout: float = 90) -> None:
        s = self._session(admin, ca)

        def ready() -> bool:
            self._check_alive()
            return s.get(f"{self.server}/readyz", timeout=2).ok

        wait_for(ready, timeout=timeout, what="kube-apiserver /readyz", ignore=(requests.RequestException,))

    def wait_apiserver_ready(self, timeout: float = 90) -> None:
        """Returns once /readyz answers 200: after `up`, or after a test restarted the
        apiserver (`procs.start_again("kube-apiserver")`)."""
        assert self._admin is not None and self.pki is not None, "up() first"
        self._wait_apiserver(self._admin, self.pki.ca, timeout)

    def _wait_components(self, admin: CertPair, ca: CertPair, t0: float) -> None:
        s = self._session(admin, ca)
        insecure = requests.Session()  # controller-manager/scheduler serve a self-signed cert
        insecure.trust_env = False
        insecure.verify = False
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        expected = {d["metadata"]["name"] for d in yaml.safe_load_all(self.fake_nodes.read_text()) if d}

        def healthy(port: int) -> bool:
            self._check_alive()
            return insecure.get(f"https://{HOST}:{port}/healthz", timeout=2).ok

        def nodes_ready() -> bool:
            self._check_alive()
            items = s.get(f"{self.server}/api/v1/nodes", timeout=5).json()["items"]
            ready = {
                n["metadata"]["name"]
                for n in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
                )
            }
            return expected <= ready

        def default_service_account() -> bool:  # proves the controller-manager's controllers run
            self._check_alive()
            return s.get(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", timeout=2).ok

        errors = (requests.RequestException,)
        checks = [
            (
                "kube-controller-manager",
                lambda: healthy(self.ports.controller_manager),
                "kube-controller-manager /healthz",
            ),
            ("kube-scheduler", lambda: healthy(self.ports.scheduler), "kube-scheduler /healthz"),
            ("nodes", nodes_ready, f"KWOK nodes {sorted(expected)} Ready"),
            ("controllers", default_service_account, "the default ServiceAccount"),
        ]
        for name, probe, what in checks:
            wait_for(probe, timeout=60, what=what, ignore=errors)
            self.timings[name] = time.monotonic() - t0

    # --- helpers ---------------------------------------------------------------------

    def kubectl_apply(self, path: Path) -> None:
        done = subprocess.run(
            [self._bin("kubectl"), f"--kubeconfig={self.kubeconfig}", "apply", "-f", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl apply -f {path} failed: {done.stderr.strip()}")

    def _write_kubeconfig(self, path: Path, ca: CertPair, client: CertPair) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "trtaoti",
                    "cluster": {"server": self.server, "certificate-authority-data": base64_file(ca.cert)},
                }
            ],
            "users": [
                {
                    "name": "user",
                    "user": {
                        "client-certificate-data": base64_file(client.cert),
                        "client-key-data": base64_file(client.key),
                    },
                }
            ],
            "contexts": [{"name": "trtaoti", "context": {"cluster": "trtaoti", "user": "user"}}],
            "current-context": "trtaoti",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def down(self) -> None:
        self.procs.stop_all()


# What a start writes into its state directory; `.dev/` may hold other tools' files too.
STATE_ENTRIES = (
    "etcd",
    "minio",
    "pki",
    "logs",
    "pids",
    "helm",
    "node",
    "gpu-nodes-tainted.yaml",
    "kubeconfig",
    "controller-manager.kubeconfig",
    "scheduler.kubeconfig",
    "kwok.kubeconfig",
    "kwok.yaml",
    "s3.env",
)


def fresh_state_dir(path: Path) -> Path:
    """Clears what a previous start left in `path` (old etcd data holds stale certificates and nodes)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in STATE_ENTRIES:
        entry = path / name
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    return path
