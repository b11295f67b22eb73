"""The TensorRT backend's calls into torch_tensorrt, proven against a recording
stand-in (TensorRT cannot be installed here; tests/gpu runs the real thing)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from compiler_fixtures import example_factory, example_model, plan_for
from support.tools import tool_missing
from trtaoti.compiler.errors import CompileFailed
from trtaoti.compiler.export import export_model, prepare_module
from trtaoti.compiler.metadata import package_metadata, versions
from trtaoti.compiler.samples import SampleInputs
from trtaoti.compiler.tensorrt import compile_options, compile_tensorrt, import_torch_tensorrt


def _pinned_torch_tensorrt() -> str:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return re.search(r'"torch-tensorrt==([0-9.]+)"', pyproject.read_text()).group(1)


# Unpacked by `make refs` (hack/fetch-reference-sources.sh), part of `make test`.
REFERENCE = Path.home() / f".cache/trtaoti/ref/torch_tensorrt-{_pinned_torch_tensorrt()}/torch_tensorrt"


def trt_like_module(count: int) -> torch.fx.GraphModule:
    """What dynamo.compile returns: a GraphModule taking the inputs positionally."""
    graph = torch.fx.Graph()
    placeholders = [graph.placeholder(f"inputs_{i}") for i in range(count)]
    graph.output(tuple(placeholders))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


class RecordingTorchTensorRT:
    """Records Input(...), dynamo.compile(...) and save(...) exactly as called."""

    __version__ = "2.14.0"

    def __init__(self, compile_style: str) -> None:
        self.inputs: list[dict[str, Any]] = []
        self.compile_calls: list[dict[str, Any]] = []
        self.save_calls: list[dict[str, Any]] = []
        recorder = self

        class Input:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs
                recorder.inputs.append(kwargs)

        def compile_2_14(
            exported_program,
            inputs=None,
            *,
            arg_inputs=None,
            device=None,
            disable_tf32=False,
            workspace_size=0,
            min_block_size=5,
            optimization_level=None,
            enable_autocast=False,
            autocast_low_precision_type=None,
            timing_cache_path="/tmp/timing_cache.bin",
            **kwargs,
        ):
            recorder.compile_calls.append(dict(program=exported_program, arg_inputs=arg_inputs, **_named(locals())))
            return trt_like_module(len(arg_inputs))

        def compile_2_12(
            exported_program,
            inputs=None,
            *,
            arg_inputs=None,
            device=None,
            disable_tf32=False,
            enabled_precisions=frozenset({torch.float32}),
            use_explicit_typing=False,
            workspace_size=0,
            min_block_size=5,
            optimization_level=None,
            **kwargs,
        ):
            recorder.compile_calls.append(dict(program=exported_program, arg_inputs=arg_inputs, **_named(locals())))
            return trt_like_module(len(arg_inputs))

        self.Input = Input
        self.dynamo = SimpleNamespace(compile={"2.14": compile_2_14, "2.12": compile_2_12}[compile_style])

    def save(self, module, file_path="", **kwargs):
        self.save_calls.append({"module": module, "file_path": file_path, **kwargs})
        Path(file_path).write_bytes(b"package")


def _named(frame_locals: dict[str, Any]) -> dict[str, Any]:
    skip = {"exported_program", "inputs", "arg_inputs", "kwargs", "recorder"}
    named = {k: v for k, v in frame_locals.items() if k not in skip}
    named.update(frame_locals.get("kwargs", {}))
    return named


@pytest.fixture(scope="module")
def twoinput_export():
    """The two-input example exported for a profile starting at batch 1, opt 1."""
    model = example_model(
        "twoinput",
        batchProfiles=[{"name": "online", "min": 1, "opt": 1, "max": 48}],
        backend="tensorrt",
        device="cuda",
        precision="fp16",
        compile={
            "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
            "minBlockSize": 3,
            "optimizationLevel": 5,
            "workspaceBytes": 1 << 30,
        },
    )
    plan = plan_for(model)
    module, examples = example_factory("twoinput.model:build")()
    cpu_plan = dataclasses.replace(plan, device="cpu")  # export runs here on the CPU
    samples = SampleInputs(plan.inputs, examples)
    exported = export_model(prepare_module(module, cpu_plan), cpu_plan, samples.make(plan.trace_batch), None)
    return plan, exported, samples


def run_backend(twoinput_export, tmp_path: Path, style: str, plan=None) -> RecordingTorchTensorRT:
    default_plan, exported, samples = twoinput_export
    plan = plan or default_plan
    trt = RecordingTorchTensorRT(style)
    metadata = package_metadata(plan, exported.outputs, versions(plan, trt), requires_torchtrt_runtime=True)
    compile_tensorrt(exported, plan, tmp_path / "model.pt2", metadata, samples.int_ranges, torchtrt=trt)
    return trt


def test_inputs_carry_the_profile_range_dtypes_and_names(twoinput_export, tmp_path: Path) -> None:
    trt = run_backend(twoinput_export, tmp_path, "2.14")
    assert trt.inputs == [
        {
            "min_shape": (1, 3, 32, 32),
            "opt_shape": (1, 3, 32, 32),
            "max_shape": (48, 3, 32, 32),
            "dtype": torch.float32,
            "name": "image",
        },
        # Integer inputs keep their dtype; TensorRT samples them from the examples' range.
        {
            "min_shape": (1,),
            "opt_shape": (1,),
            "max_shape": (48,),
            "dtype": torch.int64,
            "name": "class_id",
            "tensor_domain": (0, 16),
        },
    ]
    (call,) = trt.compile_calls
    assert [i.kwargs for i in call["arg_inputs"]] == trt.inputs
    assert call["program"] is twoinput_export[1].program


def test_fp16_uses_autocast_on_2_13_and_later(twoinput_export, tmp_path: Path) -> None:
    (call,) = run_backend(twoinput_export, tmp_path, "2.14").compile_calls
    assert call["enable_autocast"] is True
    assert call["autocast_low_precision_type"] is torch.float16
    assert (call["min_block_size"], call["optimization_level"], call["workspace_size"]) == (3, 5, 1 << 30)
    assert call["disable_tf32"] is False
    assert call["device"] == torch.device("cuda", 0)
    assert "enabled_precisions" not in call


def test_fp16_uses_enabled_precisions_up_to_2_12(twoinput_export, tmp_path: Path) -> None:
    (call,) = run_backend(twoinput_export, tmp_path, "2.12").compile_calls
    assert call["enabled_precisions"] == {torch.float32, torch.float16}
    assert call["use_explicit_typing"] is False  # weak typing: TensorRT may pick fp16 kernels
    assert "enable_autocast" not in call


def test_fp32_disables_tf32_and_low_precision(twoinput_export, tmp_path: Path) -> None:
    plan = dataclasses.replace(twoinput_export[0], precision="fp32")
    (call,) = run_backend(twoinput_export, tmp_path, "2.14", plan).compile_calls
    assert call["enable_autocast"] is False and call["autocast_low_precision_type"] is None
    assert call["disable_tf32"] is True
    (call,) = run_backend(twoinput_export, tmp_path, "2.12", plan).compile_calls
    assert call["enabled_precisions"] == {torch.float32}


def test_save_reexports_with_one_shared_batch_dim_and_stamps_metadata(twoinput_export, tmp_path: Path) -> None:
    trt = run_backend(twoinput_export, tmp_path, "2.14")
    (save,) = trt.save_calls
    assert save["file_path"] == str(tmp_path / "model.pt2")
    assert save["output_format"] == "aot_inductor"
    assert save["retrace"] is True
    # Example tensors at batch >= 2 even though the profile's opt is 1: a batch-1
    # example would specialize the re-export to a static package.
    assert [list(t.shape) for t in save["arg_inputs"]] == [[2, 3, 32, 32], [2]]
    shapes = save["dynamic_shapes"]
    assert list(shapes) == list(inspect.signature(save["module"].forward).parameters) == ["inputs_0", "inputs_1"]
    dims = [spec[0] for spec in shapes.values()]
    assert dims[0] is dims[1]  # one Dim object: one batch for all inputs
    assert (dims[0].min, dims[0].max) == (1, 48)
    metadata = save["inductor_configs"]["aot_inductor.metadata"]
    assert metadata["trtaoti.requires_torchtrt_runtime"] == "true"
    assert metadata["trtaoti.backend"] == "tensorrt"
    expected_versions = {"torch": torch.__version__.split("+")[0], "torch_tensorrt": "2.14.0"}
    if torch.version.cuda:
        expected_versions["cuda"] = torch.version.cuda
    assert json.loads(metadata["trtaoti.versions"]) == expected_versions
    assert (metadata["trtaoti.batch_min"], metadata["trtaoti.batch_opt"], metadata["trtaoti.batch_max"]) == (
        "1",
        "1",
        "48",
    )


def test_static_profile_uses_static_inputs(twoinput_export, tmp_path: Path) -> None:
    plan = twoinput_export[0]
    static = dataclasses.replace(plan, profile=plan.profile.model_copy(update={"min": 8, "opt": 8, "max": 8}))
    trt = run_backend(twoinput_export, tmp_path, "2.14", static)
    assert [i["shape"] for i in trt.inputs] == [(8, 3, 32, 32), (8,)]
    assert all("min_shape" not in i for i in trt.inputs)


def _reference_parameters(relative: str, function: str) -> set[str]:
    source = (REFERENCE / relative).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            args = node.args
            return {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    raise AssertionError(f"{function} not found in {relative}")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_options_are_accepted_by_the_real_2_14_signatures(twoinput_export, precision: str) -> None:
    if not REFERENCE.is_dir():
        tool_missing(f"torch-tensorrt source not unpacked at {REFERENCE}: run make refs")
    names = _reference_parameters("dynamo/_compiler.py", "compile")

    def real_compile(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("only the signature is used")

    real_compile.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in sorted(names)]
    )
    plan = dataclasses.replace(twoinput_export[0], precision=precision)
    options = compile_options(real_compile, plan, timing_cache=Path("/tmp/t.cache"))  # raises if a name is not accepted
    assert set(options) <= names
    assert options["timing_cache_path"] == "/tmp/t.cache"  # the shared per-product cache reaches TensorRT
    assert "enable_autocast" in options and "enabled_precisions" not in options
    save_names = _reference_parameters("_compile.py", "save")
    assert {"output_format", "retrace", "arg_inputs", "dynamic_shapes"} <= save_names  # inductor_configs: **kwargs
    input_doc = (REFERENCE / "_Input.py").read_text()
    assert all(f"{k} (" in input_doc for k in ("min_shape", "opt_shape", "max_shape", "dtype", "name", "tensor_domain"))


def test_the_timing_cache_file_reaches_dynamo_compile(twoinput_export, tmp_path: Path) -> None:
    plan, exported, samples = twoinput_export
    trt = RecordingTorchTensorRT("2.14")
    metadata = package_metadata(plan, exported.outputs, versions(plan, trt), requires_torchtrt_runtime=True)
    cache = tmp_path / "timing.cache"
    compile_tensorrt(
        exported, plan, tmp_path / "model.pt2", metadata, samples.int_ranges, torchtrt=trt, timing_cache=cache
    )
    assert trt.compile_calls[0]["timing_cache_path"] == str(cache)
    # A release whose compile takes no timing cache builds without one instead of failing.
    old = RecordingTorchTensorRT("2.12")
    compile_tensorrt(
        exported, plan, tmp_path / "old.pt2", metadata, samples.int_ranges, torchtrt=old, timing_cache=cache
    )
    assert "timing_cache_path" not in old.compile_calls[0]


def test_missing_torch_tensorrt_is_a_clear_failure() -> None:
    try:
        import torch_tensorrt  # noqa: F401 - the import is the check
    except ImportError:
        with pytest.raises(CompileFailed, match="backend tensorrt needs torch_tensorrt"):
            import_torch_tensorrt()
    else:
        pytest.skip("torch_tensorrt is installed here")
