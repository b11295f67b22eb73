"""backend: tensorrt — TensorRT engines for the convertible subgraphs, AOTInductor
for the rest, saved as one AOTInductor package.

    torch_tensorrt.dynamo.compile(program, arg_inputs=[Input(min, opt, max)], ...)
    torch_tensorrt.save(module, path, output_format="aot_inductor", retrace=True,
                        arg_inputs=<example tensors>, dynamic_shapes=<shared batch Dim>,
                        inductor_configs={"aot_inductor.metadata": ...})

Each input's min/opt/max shape is the profile's batch range, which becomes the
engines' one optimization profile. On save, the TensorRT graph is re-exported: it
gets the same shared `Dim("batch")` explicitly, keyed by its forward's parameter
names (shapes inferred from Input objects would give every input its own Dim), and
example tensors at a batch >= 2 (a batch of 1 would specialize the re-export).

Precision: the graph stays fp32 and TensorRT lowers it, keeping layers that need
it in fp32. torch_tensorrt <= 2.12 takes `enabled_precisions` (weak typing,
`use_explicit_typing=False`); 2.13+ dropped it for `enable_autocast` and
`autocast_low_precision_type`. The installed signature decides.

`torchtrt` is the torch_tensorrt module; tests pass a recording stand-in, since
TensorRT cannot be installed where CI runs.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from trtaoti.compiler.errors import CompileFailed
from trtaoti.compiler.export import ExportedModel
from trtaoti.compiler.plan import CompilePlan
from trtaoti.compiler.progress import step


def import_torch_tensorrt() -> Any:
    try:
        import torch_tensorrt
    except ImportError as exc:
        raise CompileFailed(
            f"backend tensorrt needs torch_tensorrt, which does not import here ({exc}); "
            "use the trtaoti compiler image or backend: inductor"
        ) from exc
    return torch_tensorrt


def trt_inputs(torchtrt: Any, plan: CompilePlan, int_ranges: dict[str, tuple[int, int]]) -> list[Any]:
    lo, opt, hi = plan.batch_range
    inputs = []
    for spec in plan.inputs:
        kwargs: dict[str, Any] = {"dtype": spec.dtype, "name": spec.name}
        if spec.name in int_ranges:
            # The interval TensorRT draws its own sample values from: [low, high).
            low, high = int_ranges[spec.name]
            kwargs["tensor_domain"] = (low, high + 1)
        if plan.dynamic:
            inputs.append(
                torchtrt.Input(min_shape=spec.at(lo), opt_shape=spec.at(opt), max_shape=spec.at(hi), **kwargs)
            )
        else:
            inputs.append(torchtrt.Input(shape=spec.at(lo), **kwargs))
    return inputs


def compile_options(compile_fn: Any, plan: CompilePlan, timing_cache: Path | None = None) -> dict[str, Any]:
    """Spec options as the installed torch_tensorrt.dynamo.compile names them."""
    accepted = inspect.signature(compile_fn).parameters
    low = None if plan.precision == "fp32" else plan.compute_dtype
    options: dict[str, Any] = {
        "device": torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0),
        "min_block_size": plan.options.min_block_size,
        "optimization_level": plan.options.optimization_level,
    }
    if plan.options.workspace_bytes is not None:
        options["workspace_size"] = plan.options.workspace_bytes
    if plan.precision == "fp32":
        # fp32 means fp32: no TF32 rounding in matmuls and convolutions.
        options["disable_tf32"] = True
    if "enable_autocast" in accepted:
        options["enable_autocast"] = low is not None
        if low is not None:
            options["autocast_low_precision_type"] = low
    elif "enabled_precisions" in accepted:
        options["enabled_precisions"] = {torch.float32} | ({low} if low is not None else set())
        if "use_explicit_typing" in accepted:
            options["use_explicit_typing"] = False
    else:
        raise CompileFailed("torch_tensorrt.dynamo.compile accepts neither enable_autocast nor enabled_precisions")
    if timing_cache is not None:
        if "timing_cache_path" in accepted:
            options["timing_cache_path"] = str(timing_cache)
        else:
            step("this torch_tensorrt takes no timing_cache_path: building without the shared timing cache")
    missing = [name for name in options if name not in accepted]
    if missing:
        raise CompileFailed(f"this torch_tensorrt's dynamo.compile does not accept {missing}")
    return options


def compile_tensorrt(
    exported: ExportedModel,
    plan: CompilePlan,
    package: Path,
    metadata: dict[str, str],
    int_ranges: dict[str, tuple[int, int]],
    torchtrt: Any | None = None,
    timing_cache: Path | None = None,
) -> Path:
    """`timing_cache`: a file TensorRT reads its kernel timings from (when it exists)
    and writes them back to (compiler/timing_cache.py shares it per GPU product)."""
    torchtrt = torchtrt if torchtrt is not None else import_torch_tensorrt()
    inputs = trt_inputs(torchtrt, plan, int_ranges)
    options = compile_options(torchtrt.dynamo.compile, plan, timing_cache)
    step(f"torch_tensorrt {getattr(torchtrt, '__version__', '?')}: building engines ({_describe(options)})")
    module = torchtrt.dynamo.compile(exported.program, arg_inputs=inputs, **options)
    step("torch_tensorrt: saving the AOTInductor package")
    package.parent.mkdir(parents=True, exist_ok=True)
    torchtrt.save(
        module,
        str(package),
        output_format="aot_inductor",
        retrace=True,
        arg_inputs=list(exported.example_inputs),
        dynamic_shapes=exported.dynamic_shapes_for(module),
        inductor_configs={"aot_inductor.metadata": metadata},
    )
    return package


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if k != "device")
