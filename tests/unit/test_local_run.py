"""`trtaoti run`'s pure parts: backend choice, server flags, client hints, store URIs."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest

from trtaoti.api.models import Artifact, BatchRange, GpuSelector, TrtAotiModel
from trtaoti.artifact import TensorDescription
from trtaoti.compiler.command import load_spec
from trtaoti.local import backend, client
from trtaoti.local.command import expand_store_uri
from trtaoti.local.serve import ServerError, find_server_binary, server_command
from trtaoti.resources.serving import server_args

REPO = Path(__file__).resolve().parents[2]
TWOINPUT = REPO / "examples" / "twoinput" / "trtaotimodel.yaml"


@pytest.fixture
def machine(monkeypatch):
    """What the machine has: no GPU can run here, so CUDA and Torch-TensorRT are stated."""

    def set_(cuda: bool, tensorrt: bool, gpu: str = "NVIDIA L4") -> None:
        monkeypatch.setattr(backend, "_cuda_available", lambda: cuda)
        monkeypatch.setattr(backend, "_cuda_device_name", lambda: gpu)
        reason = "torch_tensorrt imports" if tensorrt else "torch_tensorrt is not installed"
        monkeypatch.setattr(backend, "_torch_tensorrt_importable", lambda: (tensorrt, reason))

    return set_


def test_backend_prefers_tensorrt_then_cuda_inductor_then_cpu(machine):
    machine(cuda=True, tensorrt=True)
    assert (backend.choose_backend().backend, backend.choose_backend().device) == ("tensorrt", "cuda")
    machine(cuda=True, tensorrt=False)
    choice = backend.choose_backend()
    assert (choice.backend, choice.device) == ("inductor", "cuda")
    assert "torch_tensorrt is not installed" in choice.reason
    machine(cuda=False, tensorrt=True)
    choice = backend.choose_backend()
    assert (choice.backend, choice.device) == ("inductor", "cpu")
    assert "no CUDA device" in choice.reason


def test_the_gpu_is_named_as_gpu_feature_discovery_labels_it(machine):
    assert backend.gpu_product_label("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"
    assert backend.gpu_product_label(" NVIDIA A100-SXM4-80GB ") == "NVIDIA-A100-SXM4-80GB"
    machine(cuda=True, tensorrt=False, gpu="NVIDIA H100 80GB HBM3")
    assert backend.choose_backend().gpu_product == "NVIDIA-H100-80GB-HBM3"
    assert backend.choose_backend(device="cpu").gpu_product is None


def test_run_compiles_a_fleet_spec_for_this_machines_gpu(machine):
    model = load_spec(TWOINPUT)
    gpu = {"count": 1, "products": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"]}
    spec = model.spec.model_copy(update={"device": "cuda", "compile": model.spec.compile.model_copy(
        update={"gpu": GpuSelector.model_validate(gpu)})})  # fmt: skip
    fleet = model.model_copy(update={"spec": spec})
    machine(cuda=True, tensorrt=False, gpu="NVIDIA L4")
    local, note = backend.for_this_machine(fleet, backend.choose_backend())
    assert local.spec.gpu_products() == ["NVIDIA-L4"] and not local.spec.fleet
    assert note == "compiling for this machine's GPU, NVIDIA-L4 (the spec names NVIDIA-H100-80GB-HBM3, NVIDIA-L4)"
    machine(cuda=False, tensorrt=False)
    assert backend.for_this_machine(fleet, backend.choose_backend()) == (fleet, None)


def test_backend_flags_win_and_impossible_ones_are_refused(machine):
    machine(cuda=True, tensorrt=True)
    assert backend.choose_backend(device="cpu").device == "cpu"
    assert backend.choose_backend(backend="inductor").backend == "inductor"
    with pytest.raises(ValueError, match="--backend tensorrt needs --device cuda"):
        backend.choose_backend(backend="tensorrt", device="cpu")
    machine(cuda=False, tensorrt=False)
    with pytest.raises(ValueError, match="--device cuda requested but torch sees no CUDA device"):
        backend.choose_backend(device="cuda")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        backend.choose_backend(backend="tensorrt")


def test_server_command_is_the_operators_flags_with_local_path_and_port(tmp_path):
    model = load_spec(TWOINPUT)
    profile = model.spec.batch_profiles[0]
    artifact = Artifact(
        uri="file:///x/model.pt2",
        sha256="0" * 64,
        bytes=1,
        key="k",
        device="cpu",
        batch=BatchRange(min=profile.min, opt=profile.opt, max=profile.max),
    )
    binary = tmp_path / "trtaoti-server"
    command = server_command(
        binary, model.name, model.spec, profile.name, artifact, tmp_path / "m.pt2", "127.0.0.1", 9123
    )
    cluster = server_args(model.name, model.spec, profile, artifact)
    assert command[0] == str(binary)
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    expected = dict(zip(cluster[::2], cluster[1::2], strict=True))
    assert flags.pop("--model-path") == str(tmp_path / "m.pt2") and expected.pop("--model-path")
    assert flags.pop("--port") == "9123" and expected.pop("--port")
    assert flags.pop("--grpc-port") == "0" and expected.pop("--grpc-port")  # profiles share the machine
    assert flags.pop("--host") == "127.0.0.1"
    assert flags == expected
    assert flags["--sha256"] == "0" * 64  # the stored package's, from its manifest


def _manifest_signature(model: TrtAotiModel) -> list[TensorDescription]:
    kinds = {"float32": "FP32", "float16": "FP16", "int64": "INT64"}
    return [TensorDescription(name=i.name, datatype=kinds[i.dtype], shape=i.shape) for i in model.spec.inputs]


def test_curl_line_carries_a_correctly_shaped_body():
    model = load_spec(TWOINPUT)
    inputs = _manifest_signature(model)
    line = client.curl_command("http://127.0.0.1:8000", model.name, inputs)
    words = shlex.split(line)
    assert words[words.index("-X") + 2] == f"http://127.0.0.1:8000/v2/models/{model.name}/infer"
    body = json.loads(words[words.index("-d") + 1])
    assert [b["name"] for b in body["inputs"]] == [i.name for i in inputs]
    for sent, declared in zip(body["inputs"], inputs, strict=True):
        assert sent["shape"] == [1, *declared.shape[1:]]
        assert sent["datatype"] == declared.datatype
        assert len(sent["data"]) == math.prod(sent["shape"])


def test_random_inputs_and_python_snippet_follow_the_signature():
    model = load_spec(TWOINPUT)
    inputs = _manifest_signature(model)
    arrays = client.random_inputs(inputs, batch=3)
    for declared in inputs:
        assert list(arrays[declared.name].shape) == [3, *declared.shape[1:]]
    logits = TensorDescription(name="logits", datatype="FP32", shape=[-1, 10])
    snippet = client.python_snippet("127.0.0.1:8000", model.name, inputs, [logits])
    compile(snippet, "<snippet>", "exec")  # valid Python
    assert all(f'InferInput("{i.name}"' in snippet for i in inputs)


def test_store_uris(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_store_uri("file://~/store") == f"file://{tmp_path}/store"
    assert expand_store_uri("s3://bucket/prefix") == "s3://bucket/prefix"
    with pytest.raises(ValueError, match="unsupported storage URI"):
        expand_store_uri("http://example/store")


def test_server_binary_named_but_unusable_is_refused_by_name(tmp_path, monkeypatch):
    not_executable = tmp_path / "trtaoti-server"
    not_executable.write_text("")
    with pytest.raises(ServerError, match=re.escape(f"--server-binary {not_executable} is not an executable file")):
        find_server_binary(str(not_executable))
    monkeypatch.setenv("TRTAOTI_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ServerError, match=r"\$TRTAOTI_SERVER .*missing is not an executable file"):
        find_server_binary(None)
