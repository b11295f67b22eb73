"""torch.export with one dynamic batch dimension shared by every input.

The exported program is what both backends compile. Before export the model is
wrapped so its signature matches spec.inputs exactly: floating inputs declared in a
different dtype than the model computes in are cast inside the graph (clients send
what spec.inputs declares); integer inputs are passed through untouched.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from trtaoti.compiler.dtypes import kserve_datatype
from trtaoti.compiler.errors import InvalidInput
from trtaoti.compiler.plan import CompilePlan

BATCH_DIM_NAME = "batch"


class SignatureAdapter(torch.nn.Module):
    """Takes the inputs as spec.inputs declares them; casts floating ones to the model's dtype."""

    def __init__(self, model: torch.nn.Module, casts: Sequence[torch.dtype | None]) -> None:
        super().__init__()
        self.model = model
        self.casts = list(casts)

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.model(*[x if dtype is None else x.to(dtype) for x, dtype in zip(inputs, self.casts, strict=True)])


@dataclass(frozen=True)
class OutputSpec:
    name: str
    datatype: str
    shape: list[int]  # -1: the batch dimension


@dataclass
class ExportedModel:
    program: torch.export.ExportedProgram
    example_inputs: tuple[torch.Tensor, ...]  # on the target device, batch = plan.trace_batch
    batch_dim: Any | None  # the shared torch.export.Dim; None for a static profile
    outputs: list[OutputSpec]

    def dynamic_shapes_for(self, module: torch.nn.Module) -> dict[str, Any] | None:
        """Dynamic shapes keyed by `module.forward`'s parameter names, for re-exporting a
        module derived from this program (e.g. TensorRT's) whose signature may be
        positional (`inputs_0, inputs_1`) or variadic (`*inputs`)."""
        if self.batch_dim is None:
            return None
        count = len(self.example_inputs)
        parameters = list(inspect.signature(module.forward).parameters.values())
        if parameters and parameters[0].kind is inspect.Parameter.VAR_POSITIONAL:
            return {parameters[0].name: tuple({0: self.batch_dim} for _ in range(count))}
        if len(parameters) < count:
            raise ValueError(f"{type(module).__name__}.forward takes {len(parameters)} inputs, expected {count}")
        return {p.name: {0: self.batch_dim} for p in parameters[:count]}


def model_dtype(module: torch.nn.Module) -> torch.dtype | None:
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.dtype.is_floating_point:
            return tensor.dtype
    return None


def eval_mode(module: torch.nn.Module) -> torch.nn.Module:
    try:
        return module.eval()
    except NotImplementedError:
        # ExportedProgram.module() refuses eval(): its graph was traced in one mode already.
        return module


def prepare_module(module: torch.nn.Module, plan: CompilePlan) -> SignatureAdapter:
    """Eval mode, target device, compute precision, and the spec's input signature.

    Inductor compiles exactly the dtypes in the graph, so the weights are cast to the
    requested precision here. TensorRT keeps the fp32 graph and lowers precision
    itself (autocast / enabled_precisions), keeping sensitive layers in fp32.
    """
    module = eval_mode(module).to(plan.torch_device)
    if plan.backend == "inductor" and plan.precision != "fp32":
        module = module.to(plan.compute_dtype)
    target = model_dtype(module)
    casts = [
        target if target is not None and spec.dtype.is_floating_point and spec.dtype != target else None
        for spec in plan.inputs
    ]
    return SignatureAdapter(module, casts)


def batch_dim_for(plan: CompilePlan) -> Any | None:
    if not plan.dynamic:
        return None
    # One Dim object for all inputs: they share one batch size, and the package
    # (and TensorRT's profile) then has a single symbolic batch.
    return torch.export.Dim(BATCH_DIM_NAME, min=plan.profile.min, max=plan.profile.max)


def export_model(
    adapter: SignatureAdapter,
    plan: CompilePlan,
    example_inputs: tuple[torch.Tensor, ...],
    output_names: Sequence[str] | None,
) -> ExportedModel:
    batch_dim = batch_dim_for(plan)
    # SignatureAdapter.forward(*inputs): one entry, a tuple with one spec per input.
    dynamic_shapes = None if batch_dim is None else (tuple({0: batch_dim} for _ in plan.inputs),)
    try:
        program = torch.export.export(adapter, example_inputs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as exc:  # torch.export raises UserError, GuardOnDataDependentSymNode, TypeError, ...
        raise InvalidInput(explain_export_failure(exc, plan)) from exc
    outputs = describe_outputs(program, plan, output_names)
    return ExportedModel(program, example_inputs, batch_dim, outputs)


def explain_export_failure(exc: Exception, plan: CompilePlan) -> str:
    names = [spec.name for spec in plan.inputs]
    reason = _torch_reason(str(exc))
    reason = re.sub(r"L\['inputs'\]\[(\d+)\]", lambda m: f"input {names[int(m.group(1))]!r}", reason)
    if "Constraints violated" in str(exc) or "specialized" in str(exc):
        return (
            f"inputs {', '.join(repr(n) for n in names)}: the model cannot run every batch size in "
            f"{plan.describe_range()}; torch.export says:\n{reason}"
        )
    return (
        f"torch.export failed for inputs {', '.join(repr(n) for n in names)} over batch {plan.describe_range()}: "
        f"{type(exc).__name__}: {reason}"
    )


def _torch_reason(message: str) -> str:
    """torch's message without its generic advice paragraphs."""
    kept = []
    for line in message.strip().splitlines():
        if line.startswith(("The error above occurred", "For more information", "Exception raised from")):
            break
        kept.append(line.replace(' For more information, run with TORCH_LOGS="+dynamic".', ""))
    return "\n".join(kept).strip()[:1500]


def output_names_from(raw_output: Any, count: int, given: Sequence[str] | None) -> list[str]:
    """Factory-given names, else the keys of a flat dict output, else Triton's output__N."""
    if given is not None:
        if len(given) != count:
            raise InvalidInput(f"the model has {count} outputs but {len(given)} output names were given: {list(given)}")
        return list(given)
    if isinstance(raw_output, dict) and all(isinstance(v, torch.Tensor) for v in raw_output.values()):
        return [str(k) for k in raw_output]
    return [f"output__{i}" for i in range(count)]


def describe_outputs(
    program: torch.export.ExportedProgram, plan: CompilePlan, names: Sequence[str] | None
) -> list[OutputSpec]:
    placeholders = [node for node in program.graph.nodes if node.op == "placeholder"]
    user_inputs = placeholders[-len(plan.inputs) :]
    batch_symbol = user_inputs[0].meta["val"].shape[0]
    output_node = next(node for node in program.graph.nodes if node.op == "output")
    values = [arg.meta["val"] for arg in tree_flatten(output_node.args[0])[0]]
    names = output_names_from(None, len(values), names) if names is None else list(names)
    if len(names) != len(values):
        raise InvalidInput(f"the model has {len(values)} outputs but {len(names)} output names: {names}")
    specs = []
    for name, value in zip(names, values, strict=True):
        shape = list(value.shape)
        if not shape or not _is_batch(shape[0], batch_symbol, plan):
            raise InvalidInput(
                f"output {name!r} has shape {shape}: every output's first dimension must be the batch "
                f"(the server splits outputs per request along it)"
            )
        rest = shape[1:]
        if any(not isinstance(d, int) for d in rest):
            raise InvalidInput(f"output {name!r} has shape {shape}: only the batch dimension may vary")
        specs.append(OutputSpec(name, kserve_datatype(value.dtype), [-1, *rest]))
    return specs


def _is_batch(dim: Any, batch_symbol: Any, plan: CompilePlan) -> bool:
    if not plan.dynamic:
        return isinstance(dim, int) and dim == plan.profile.min
    return isinstance(dim, torch.SymInt) and str(dim) == str(batch_symbol)
