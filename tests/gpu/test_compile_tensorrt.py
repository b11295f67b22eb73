"""`trtaoti compile` on a GPU: the example models through Torch-TensorRT (where
torch_tensorrt imports) and through AOTInductor on CUDA, stored, fetched and compared
with eager PyTorch across each profile's range.

Skips, with the reason, where there is no CUDA device or no torch_tensorrt.

With torch 2.11 on the GPU machines, Python's aoti_load_package segfaults unless the
process starts with LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6 (DESIGN.md);
the compiler's validation worker sets it itself, this test process needs it too:

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6 python -m pytest tests/gpu
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils._pytree import tree_flatten

from trtaoti.api.models import TrtAotiModel
from trtaoti.compiler.pipeline import CompileRequest, compile_profile
from trtaoti.storage import open_store, split_object_uri

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def require_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device visible to torch {torch.__version__}")


def require_torch_tensorrt():
    require_cuda()
    try:
        import torch_tensorrt
    except Exception as exc:  # noqa: BLE001 - ImportError, or an OSError from a missing libnvinfer
        pytest.skip(f"torch_tensorrt does not import here: {type(exc).__name__}: {exc}")
    return torch_tensorrt


def gpu_model(example: str, backend: str, store: Path) -> TrtAotiModel:
    document = yaml.safe_load((EXAMPLES / example / "trtaotimodel-gpu.yaml").read_text())
    document = copy.deepcopy(document)
    document["spec"]["model"]["python"]["pythonPath"] = [str(EXAMPLES)]
    document["spec"]["backend"] = backend
    document["spec"]["storage"] = {"uri": f"file://{store}"}
    return TrtAotiModel.model_validate(document)


def eager(factory: str) -> torch.nn.Module:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    module_name, _, attribute = factory.partition(":")
    module = __import__(module_name, fromlist=[attribute])
    return getattr(module, attribute)()[0].eval().cuda()


def compile_and_check(example: str, backend: str, profile: str, tmp_path: Path) -> dict:
    model = gpu_model(example, backend, tmp_path / "store")
    outcome = compile_profile(
        CompileRequest(model=model, profile=profile, output_uri=model.spec.storage.uri, compiler_image="gpu-test")
    )
    manifest = outcome.manifest.to_wire()  # as stored
    directory, name = split_object_uri(manifest["uri"])
    local = tmp_path / "fetched" / "model.pt2"
    open_store(directory).download_file(name, local, expected_sha256=manifest["sha256"])
    assert hashlib.sha256(local.read_bytes()).hexdigest() == manifest["sha256"]

    runner = torch._inductor.aoti_load_package(str(local))
    metadata = runner.get_metadata()
    assert metadata["trtaoti.backend"] == backend and metadata["trtaoti.device"] == "cuda"
    assert (metadata.get("trtaoti.requires_torchtrt_runtime") == "true") == (backend == "tensorrt")
    assert manifest["computeCapability"] == "{}.{}".format(*torch.cuda.get_device_capability())
    assert manifest["peakGpuMemoryBytes"] > 0

    reference = eager(model.spec.model.python.factory)
    batch = manifest["batch"]
    inputs_spec = manifest["inputs"]
    for size in sorted({batch["min"], batch["opt"], (batch["opt"] + batch["max"]) // 2, batch["max"]}):
        inputs = []
        for spec in inputs_spec:
            shape = [size, *spec["shape"][1:]]
            if spec["datatype"] == "INT64":
                inputs.append(torch.randint(0, 16, shape, device="cuda"))
            else:
                inputs.append(torch.randn(shape, device="cuda", dtype=torch.float16))
        with torch.no_grad():
            want = tree_flatten(reference(*[t.float() if t.is_floating_point() else t for t in inputs]))[0]
        got = tree_flatten(runner(*inputs))[0]
        for out, g, w in zip(manifest["outputs"], got, want, strict=True):
            assert list(g.shape) == [size, *out["shape"][1:]]
            torch.testing.assert_close(g.float(), w.float(), rtol=2e-2, atol=2e-2, msg=f"{out['name']} at batch {size}")
    print(
        json.dumps(
            {k: manifest[k] for k in ("backend", "latencyMs", "peakMemoryBytes", "peakGpuMemoryBytes", "validation")}
        )
    )
    return manifest


@pytest.mark.parametrize(("example", "profile"), [("mlp", "online"), ("twoinput", "online")])
def test_tensorrt_package(example: str, profile: str, tmp_path: Path) -> None:
    trt = require_torch_tensorrt()
    manifest = compile_and_check(example, "tensorrt", profile, tmp_path)
    assert manifest["versions"]["torch_tensorrt"] == trt.__version__
    # TensorRT's timing cache is kept per GPU product and TensorRT release beside the artifacts.
    store = open_store(f"file://{tmp_path / 'store'}")
    caches = [p for p in store.list("timing-caches") if p.endswith(".cache")]
    product, tensorrt = manifest["gpuProduct"], manifest["versions"]["tensorrt"]
    assert caches and all(p.startswith(f"timing-caches/{product}/tensorrt-{tensorrt}/") for p in caches), caches


@pytest.mark.parametrize(("example", "profile"), [("mlp", "online"), ("twoinput", "online")])
def test_inductor_cuda_package(example: str, profile: str, tmp_path: Path) -> None:
    require_cuda()
    compile_and_check(example, "inductor", profile, tmp_path)
