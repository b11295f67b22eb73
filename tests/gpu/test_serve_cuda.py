"""Compile -> serve -> infer on a GPU, the way a user's model travels: the examples
(mlp, twoinput) compiled by the real `trtaoti compile` CLI (backend inductor, CUDA,
fp16 and bf16) into a file:// store, served by trtaoti-server `--device cuda:0`, and
queried through tritonclient with binary tensors and with JSON; every answer is
compared with the eager fp32 model under the precision's validation tolerance.

Skips, with the reason, where torch sees no CUDA device. The four compiles run at
once (separate processes) before the first test. On the GPU machine (no kubernetes
client there, hence --noconftest):

    python3 -m pytest -p no:cacheprovider --noconftest tests/gpu/test_serve_cuda.py -v

TRTAOTI_SERVE_TEST_DEVICE=cpu runs the same on a CPU (inductor's CPU fp16/bf16
kernels), which checks this file itself where no GPU is at hand.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils._pytree import tree_flatten

from trtaoti.compiler.validate import DEFAULT_TOLERANCES

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import server_support as support  # noqa: E402 - tests/e2e is put on sys.path just above

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("TRTAOTI_SERVE_TEST_DEVICE", "cuda")
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip(f"no CUDA device visible to torch {torch.__version__}", allow_module_level=True)

http = pytest.importorskip("tritonclient.http")

PRECISIONS = {"fp16": ("float16", "FP16"), "bf16": ("bfloat16", "BF16")}
CASES = [(example, precision) for example in ("mlp", "twoinput") for precision in PRECISIONS]
COMPILE_TIMEOUT = 900


@dataclass
class Compiled:
    example: str
    precision: str
    name: str
    returncode: int
    log: str
    manifest: dict | None
    package: Path | None


def spec_for(example: str, precision: str, store: Path) -> dict:
    """The example's GPU manifest with backend inductor and the float inputs in the
    compute precision (integer inputs stay INT64)."""
    document = copy.deepcopy(yaml.safe_load((EXAMPLES / example / "trtaotimodel-gpu.yaml").read_text()))
    spec = document["spec"]
    document["metadata"]["name"] = f"{example}-{precision}"
    spec["model"]["python"]["pythonPath"] = [str(EXAMPLES)]
    spec["backend"] = "inductor"
    spec["precision"] = precision
    spec["storage"] = {"uri": f"file://{store}"}
    for spec_input in spec["inputs"]:
        if spec_input["dtype"].startswith("float"):
            spec_input["dtype"] = PRECISIONS[precision][0]
    if DEVICE == "cuda":
        spec["compile"]["gpu"]["product"] = torch.cuda.get_device_name(0).replace(" ", "-")
    return document


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Compiled]:
    """All four packages, compiled by the CLI in parallel processes."""
    work = tmp_path_factory.mktemp("serve")
    store = work / "store"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))
    )
    running = {}
    logs = contextlib.ExitStack()  # every log stays open until its compile is read back
    for example, precision in CASES:
        spec_path = work / f"{example}-{precision}.yaml"
        spec_path.write_text(yaml.safe_dump(spec_for(example, precision, store)))
        profile = yaml.safe_load(spec_path.read_text())["spec"]["batchProfiles"][0]["name"]
        log = logs.enter_context((work / f"{example}-{precision}.log").open("w+"))
        command = [
            sys.executable,
            "-m",
            "trtaoti.cli",
            "compile",
            "--spec",
            str(spec_path),
            "--profile",
            profile,
            "--output",
            f"file://{store}",
            "--device",
            DEVICE,
            "--compiler-image",
            "gpu-serve-test",
        ]
        running[(example, precision)] = (subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    results = {}
    with logs:
        for (example, precision), (process, log) in running.items():
            try:
                returncode = process.wait(timeout=COMPILE_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = process.wait()
            log.seek(0)
            text = log.read()
            name = f"{example}-{precision}"
            manifests = (json.loads(p.read_text()) for p in store.glob("*/manifest.json"))
            manifest = next((m for m in manifests if m["modelName"] == name), None)
            package = store / manifest["key"] / manifest["model"] if manifest else None
            results[(example, precision)] = Compiled(example, precision, name, returncode, text, manifest, package)
    support.build_server()
    return results


@pytest.fixture(scope="module", params=CASES, ids=[f"{e}-{p}" for e, p in CASES])
def served(request: pytest.FixtureRequest, compiled: dict[tuple[str, str], Compiled]):
    artifact = compiled[request.param]
    assert artifact.returncode == 0 and artifact.package is not None, (
        f"trtaoti compile {artifact.name} exited {artifact.returncode}:\n{artifact.log[-4000:]}"
    )
    device = "cuda:0" if DEVICE == "cuda" else "cpu"
    # A 2 ms queue delay, so concurrent requests can share executions.
    with support.run_server(
        artifact.package, "--device", device, "--runners", "2", "--max-queue-delay-us", "2000", startup_timeout=300
    ) as server:
        client = http.InferenceServerClient(url=server.url, concurrency=1, network_timeout=120)
        yield artifact, server, client
        client.close()


def eager_model(example: str) -> torch.nn.Module:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    module = __import__(f"{example}.model", fromlist=["build"])
    return module.build()[0].eval()


def draw_inputs(manifest: dict, batch: int, seed: int) -> list[tuple[dict, np.ndarray]]:
    """Random inputs at `batch` rows; float values already rounded to the wire dtype,
    so eager fp32 sees exactly what the server receives."""
    import ml_dtypes

    rng = np.random.default_rng(seed)
    drawn = []
    for spec in manifest["inputs"]:
        shape = [batch, *spec["shape"][1:]]
        if spec["datatype"] == "INT64":
            drawn.append((spec, rng.integers(0, 16, size=shape, dtype=np.int64)))
        else:
            wire = np.float16 if spec["datatype"] == "FP16" else ml_dtypes.bfloat16
            drawn.append((spec, rng.standard_normal(shape).astype(np.float32).astype(wire)))
    return drawn


def eager_outputs(example: str, drawn: list[tuple[dict, np.ndarray]]) -> list[np.ndarray]:
    tensors = [torch.from_numpy(a.astype(np.float32) if a.dtype != np.int64 else a) for _, a in drawn]
    with torch.no_grad():
        return [t.numpy() for t in tree_flatten(eager_model(example)(*tensors))[0]]


def infer(client, artifact: Compiled, drawn, binary: bool):
    inputs = []
    for spec, array in drawn:
        item = http.InferInput(spec["name"], list(array.shape), spec["datatype"])
        # tritonclient sends BF16 only as binary; the server's JSON BF16 path is the same
        # number conversion as FP16, which the fp16 cases cover.
        item.set_data_from_numpy(array, binary_data=binary or spec["datatype"] == "BF16")
        inputs.append(item)
    outputs = [http.InferRequestedOutput(o["name"], binary_data=binary) for o in artifact.manifest["outputs"]]
    return client.infer(artifact.name, inputs, outputs=outputs)


def check_against_eager(artifact: Compiled, result, drawn) -> None:
    rtol, atol = DEFAULT_TOLERANCES[artifact.precision]
    want = eager_outputs(artifact.example, drawn)
    batch = drawn[0][1].shape[0]
    for spec, expected in zip(artifact.manifest["outputs"], want, strict=True):
        got = result.as_numpy(spec["name"])
        assert got is not None, f"no output {spec['name']}"
        assert list(got.shape) == [batch, *spec["shape"][1:]]
        np.testing.assert_allclose(
            got.astype(np.float32),
            expected,
            rtol=rtol,
            atol=atol,
            err_msg=f"{artifact.name} {spec['name']} at batch {batch}",
        )


def test_metadata_is_the_compiled_signature(served) -> None:
    artifact, _, client = served
    metadata = client.get_model_metadata(artifact.name)
    wire = PRECISIONS[artifact.precision][1]
    served_inputs = {i["name"]: i for i in metadata["inputs"]}
    for spec in artifact.manifest["inputs"]:
        assert served_inputs[spec["name"]]["datatype"] == spec["datatype"]
        assert served_inputs[spec["name"]]["shape"] == spec["shape"]
        assert spec["datatype"] in (wire, "INT64")
    assert [o["name"] for o in metadata["outputs"]] == [o["name"] for o in artifact.manifest["outputs"]]
    assert artifact.manifest["precision"] == artifact.precision and artifact.manifest["backend"] == "inductor"
    if DEVICE == "cuda":
        assert artifact.manifest["peakGpuMemoryBytes"] > 0


def test_binary_tensors_equal_eager_across_the_range(served) -> None:
    artifact, _, client = served
    batch = artifact.manifest["batch"]
    for size in sorted({batch["min"], 3, batch["opt"], batch["max"]}):
        drawn = draw_inputs(artifact.manifest, size, seed=size)
        check_against_eager(artifact, infer(client, artifact, drawn, binary=True), drawn)


def test_json_equals_eager(served) -> None:
    artifact, _, client = served
    drawn = draw_inputs(artifact.manifest, 5, seed=11)
    check_against_eager(artifact, infer(client, artifact, drawn, binary=False), drawn)


def test_concurrent_requests_are_correct_and_counted(served) -> None:
    """16 clients at once with 1-4 rows each: whatever the batcher coalesces or pads,
    every client gets its own rows back, and /metrics counts exactly the rows sent.
    (Whether requests coalesce depends on timing; tests/e2e/test_server_batching.py
    asserts the batching itself.)"""
    artifact, server, _ = served
    labels = {"model": artifact.name, "version": "1"}
    client = http.InferenceServerClient(url=server.url, concurrency=16, network_timeout=120)
    try:
        drawn = [draw_inputs(artifact.manifest, 1 + i % 4, seed=100 + i) for i in range(48)]
        text = server.metrics()
        before = {
            name: support.metric(text, name, **labels) for name in ("nv_inference_count", "nv_inference_exec_count")
        }
        pending = []
        for d in drawn:
            inputs = []
            for spec, array in d:
                item = http.InferInput(spec["name"], list(array.shape), spec["datatype"])
                item.set_data_from_numpy(array, binary_data=True)
                inputs.append(item)
            pending.append(client.async_infer(artifact.name, inputs))
        for d, request in zip(drawn, pending, strict=True):
            check_against_eager(artifact, request.get_result(timeout=120), d)
        text = server.metrics()
        rows = support.metric(text, "nv_inference_count", **labels) - before["nv_inference_count"]
        executions = support.metric(text, "nv_inference_exec_count", **labels) - before["nv_inference_exec_count"]
    finally:
        client.close()
    assert rows == sum(d[0][1].shape[0] for d in drawn)
    assert 0 < executions <= len(drawn)
    print(f"{artifact.name}: {len(drawn)} requests, {rows:.0f} rows in {executions:.0f} executions")


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("case", [("twoinput", "fp16"), ("mlp", "bf16")], ids=["twoinput-fp16", "mlp-bf16"])
def test_cuda_graph_replays_equal_eager(compiled: dict[tuple[str, str], Compiled], case: tuple[str, str]) -> None:
    """--cuda-graph-max-batch 8: batches that replay a captured graph (1, 2, 8), that
    replay a larger one with padding rows (3, 5) and that run plainly above it (9, the
    max) all answer like eager, and so do concurrent clients."""
    artifact = compiled[case]
    assert artifact.returncode == 0 and artifact.package is not None, artifact.log[-4000:]
    with support.run_server(
        artifact.package, "--device", "cuda:0", "--runners", "2", "--cuda-graph-max-batch", "8", startup_timeout=300
    ) as server:
        graphs = [e for e in server.logs if str(e.get("msg", "")).startswith("CUDA graphs")]
        assert graphs and graphs[0]["msg"] == "CUDA graphs on", f"graphs not captured: {graphs}"
        client = http.InferenceServerClient(url=server.url, concurrency=8, network_timeout=120)
        try:
            batch = artifact.manifest["batch"]
            for size in sorted({s for s in (1, 2, 3, 5, 8, 9, batch["max"]) if batch["min"] <= s <= batch["max"]}):
                drawn = draw_inputs(artifact.manifest, size, seed=300 + size)
                check_against_eager(artifact, infer(client, artifact, drawn, binary=True), drawn)
            drawn = [draw_inputs(artifact.manifest, 1 + i % 3, seed=400 + i) for i in range(24)]
            pending = []
            for d in drawn:
                inputs = []
                for spec, array in d:
                    item = http.InferInput(spec["name"], list(array.shape), spec["datatype"])
                    item.set_data_from_numpy(array, binary_data=True)
                    inputs.append(item)
                pending.append(client.async_infer(artifact.name, inputs))
            for d, request in zip(drawn, pending, strict=True):
                check_against_eager(artifact, request.get_result(timeout=120), d)
        finally:
            client.close()
