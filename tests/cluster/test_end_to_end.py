"""The whole system, for real, on the real control plane: nothing played but the kubelet.

1. `helm install` of the chart into a namespace that enforces the `restricted` Pod
   Security Standard; the operator is the chart's own container (its args and env as
   installed) authenticated as the chart's ServiceAccount (TokenRequest token).
2. The CPU MLP example (examples/mlp/trtaotimodel.yaml), pointed at MinIO, applied with
   `kubectl apply --server-side` next to a storage Secret.
3. The compile Job's pod, as the apiserver admitted it, runs here: its own command,
   args and env (envFrom the Secret, the spec ConfigMap as a file): a real CPU
   AOTInductor compile whose package and manifest land in MinIO. Its exit code and
   termination message become the KWOK pod's outcome.
4. The serving Deployment's pod runs here too: its `trtaoti fetch` init container
   (sha256-verified download from MinIO), then `trtaoti-server` with its own flags; a
   tritonclient inference through it equals the eager model.
5. The TrtAotiModel reports Ready=True, in its status and in `kubectl get`.

Costs one CPU compile (~30 s on 2 cores).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from kubernetes import client

from local_kubelet import (
    COMPILER_IMAGE,
    OPERATOR_IMAGE,
    SERVER_BUILD,
    SERVER_IMAGE,
    LocalPod,
    read_pod,
    stop,
)
from operator_support import S3_SECRET, Models, storage_secret, storage_uri
from support.credentials import service_account_kubeconfig
from support.examples import mlp_eager_logits, served_mlp_logits
from support.kwok import finish_pod
from support.ports import free_port
from support.waiting import wait_for
from trtaoti.resources import names

REPO = Path(__file__).resolve().parents[2]
CHART = "charts/trtaoti-operator"
EXAMPLE = REPO / "examples" / "mlp" / "trtaotimodel.yaml"
MODEL, PROFILE = "mlp", "online"
COMPILE_TIMEOUT = 600


@pytest.fixture
def release(cluster, crd, restricted_namespace) -> Iterator[str]:
    """The chart, installed as a user would, watching the test namespace."""
    name = "e2e-" + restricted_namespace[-6:]
    # The CRD is shared by the session (the `crd` fixture); the chart must not own it.
    cluster.helm(
        "install", name, CHART, "--namespace", restricted_namespace, "--set", "crds.enabled=false",
        "--set-json", f'watchNamespaces=["{restricted_namespace}"]',
    )  # fmt: skip # argv: flags beside their values
    try:
        yield name
    finally:
        cluster.helm("uninstall", name, "--namespace", restricted_namespace, "--wait", "--timeout", "60s", check=False)


@pytest.fixture
def processes() -> Iterator[list]:
    """Every process the test starts; all stopped (SIGTERM, then SIGKILL) whatever happens."""
    started: list = []
    yield started
    for process in reversed(started):
        stop(process)


def example_manifest(namespace: str, storage: str) -> dict:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"]["namespace"] = namespace
    # The compiler image carries examples/ at /opt/trtaoti/examples (images/compiler/Dockerfile).
    document["spec"]["model"]["python"]["pythonPath"] = ["/opt/trtaoti/examples"]
    document["spec"]["storage"] = {"uri": storage, "secretName": S3_SECRET}
    return document


def test_example_compiles_serves_and_turns_ready(cluster, restricted_namespace, release, processes, tmp_path):
    namespace = restricted_namespace
    timings: dict[str, float] = {}
    started = time.monotonic()
    assert (SERVER_BUILD / "trtaoti-server").exists(), "build the server first: make server"
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    models = Models(cluster, namespace)
    try:
        # 1. The chart's operator container, run here with its ServiceAccount's token.
        operator_pod = wait_for(
            lambda: read_pod(core, namespace, f"app.kubernetes.io/instance={release}"),
            timeout=60,
            what="the chart's operator pod admitted and running",
        )
        kubeconfig = service_account_kubeconfig(
            cluster, namespace, f"{release}-trtaoti-operator", tmp_path / "kubeconfig"
        )
        operator = LocalPod(core, operator_pod, tmp_path / "operator")
        operator_process, operator_log = operator.start(
            "operator", OPERATOR_IMAGE, port_map={8080: free_port()}, extra_args=("--kubeconfig", str(kubeconfig))
        )
        processes.append(operator_process)

        def operator_said() -> str:
            return operator_log.read_text(errors="replace")[-4000:]

        def operator_alive() -> None:
            if operator_process.poll() is not None:
                pytest.fail(f"the operator exited ({operator_process.returncode}):\n{operator_said()}", pytrace=False)

        # 2. A user's Secret and the example, pointed at MinIO.
        storage_secret(cluster, namespace)
        storage = storage_uri(cluster, namespace)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(example_manifest(namespace, storage)))

        # 3. The compile pod, run as the kubelet would.
        def compile_pod() -> client.V1Pod | None:
            operator_alive()
            return read_pod(
                core,
                namespace,
                f"{names.LABEL_MODEL}={MODEL},{names.LABEL_PROFILE}={PROFILE},batch.kubernetes.io/job-name",
            )

        pod = wait_for(compile_pod, timeout=120, what="the compile Job's pod running")
        timings["compile pod running"] = time.monotonic() - started
        compiler = LocalPod(core, pod, tmp_path / "compile")
        termination_log = compiler.root / "termination-log"  # the kubelet provides /dev/termination-log
        termination_log.touch()
        code, output = compiler.run(
            "compile",
            COMPILER_IMAGE,
            timeout=COMPILE_TIMEOUT,
            extra_env={"TRTAOTI_TERMINATION_LOG": str(termination_log)},
        )
        message = termination_log.read_text()
        if code != 0:
            finish_pod(core, namespace, pod.metadata.name, "Failed", exit_code=code, message=message)
            pytest.fail(f"the compile container exited {code}:\n{output[-4000:]}", pytrace=False)
        finish_pod(core, namespace, pod.metadata.name, "Succeeded", message=message)
        timings["compiled"] = time.monotonic() - started
        summary = json.loads(message)  # what `kubectl describe pod` shows
        assert summary["ok"] and not summary["cacheHit"] and summary["uri"].startswith(storage + "/"), message

        compiled = models.wait_condition(MODEL, "Compiled", "True", timeout=120)
        assert compiled["observedGeneration"] == 1

        # 4. The serving pod: init container, then the server, with their own commands.
        selector = ",".join(f"{k}={v}" for k, v in names.serving_selector(MODEL, PROFILE).items())

        def serving_pod() -> client.V1Pod | None:
            operator_alive()
            return read_pod(core, namespace, selector)

        pod = wait_for(serving_pod, timeout=120, what="the serving Deployment's pod running")
        serving = LocalPod(core, pod, tmp_path / "serving")
        code, output = serving.run("fetch", OPERATOR_IMAGE, init=True, timeout=120)
        assert code == 0, f"the fetch init container exited {code}:\n{output}"
        assert "sha256 verified" in output
        port, grpc_port = free_port(), free_port()
        server, server_log = serving.start("server", SERVER_IMAGE, port_map={8000: port, 8001: grpc_port})
        processes.append(server)

        def server_ready() -> bool:
            if server.poll() is not None:
                pytest.fail(
                    f"trtaoti-server exited {server.returncode}:\n{server_log.read_text()[-4000:]}", pytrace=False
                )
            return requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200

        wait_for(server_ready, timeout=120, what="trtaoti-server ready", ignore=(requests.ConnectionError,))
        timings["serving"] = time.monotonic() - started

        features = np.random.default_rng(3).standard_normal((7, 64)).astype(np.float32)
        logits = served_mlp_logits(f"127.0.0.1:{port}", features, model=MODEL)
        np.testing.assert_allclose(logits, mlp_eager_logits(features), rtol=1e-4, atol=1e-5)
        # The Deployment's gRPC port (8001, named in the Service) serves the same model.
        np.testing.assert_allclose(
            served_mlp_logits(f"127.0.0.1:{grpc_port}", features, model=MODEL, grpc=True), logits, rtol=1e-6
        )

        # 5. Ready, as the user sees it.
        ready = models.wait_condition(MODEL, "Ready", "True", timeout=120)
        assert ready["observedGeneration"] == 1
        rows = [line.split() for line in cluster.kubectl("get", "trtaotimodels", "-n", namespace).splitlines()]
        assert rows[0][:4] == ["NAME", "READY", "PROFILES", "BACKEND"], rows
        assert rows[1][:4] == [MODEL, "True", "1/1", "inductor"], rows

        status = models.get(MODEL)["status"]["profiles"][0]
        package = serving.volumes["models"] / "model.pt2"
        assert status["artifact"]["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
        assert status["artifact"]["uri"].startswith(storage + "/")
        assert status["endpoint"].startswith(f"http://{names.serving_name(MODEL, PROFILE)}.{namespace}.svc")
        operator_alive()
        timings["ready"] = time.monotonic() - started
        print("end-to-end timings (s):", {k: round(v, 1) for k, v in timings.items()})
    except BaseException:
        print(
            f"operator log:\n{operator_log.read_text(errors='replace')[-6000:]}" if "operator_log" in locals() else ""
        )
        raise
    finally:
        models.close()
        api.close()
