"""Load the model named by spec.model.

Two kinds of source:

* `python.factory: "package.module:callable"` (with `pythonPath` entries prepended to
  sys.path; relative entries are relative to the spec file's directory). The callable
  takes no arguments and returns `(module, example_inputs)` or
  `(module, example_inputs, output_names)`. Output names may also come from a
  `module.output_names` attribute, or from the keys of a dict the module returns.
* `exportedProgram: URI`: a `torch.export.save()` file in object storage, verified
  against `model.sha256` when given. Its saved example inputs (if any) set the value
  range of integer inputs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from trtaoti.api.models import ModelSource, PythonSource
from trtaoti.compiler.errors import CompileFailed, InvalidInput
from trtaoti.compiler.plan import TensorSpec
from trtaoti.storage import ChecksumMismatch, ObjectNotFound, StorageError, open_store, split_object_uri


@dataclass
class LoadedModel:
    module: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...] | None
    output_names: list[str] | None
    description: str


def load_model(
    source: ModelSource, *, spec_dir: Path, workdir: Path, env: Mapping[str, str] | None = None
) -> LoadedModel:
    if source.python is not None:
        return load_python_factory(source.python, spec_dir)
    assert source.exported_program is not None
    return load_exported_program(source.exported_program, source.sha256, workdir, env)


def load_python_factory(source: PythonSource, spec_dir: Path) -> LoadedModel:
    for entry in reversed(source.python_path):
        path = str((spec_dir / entry).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, _, attribute = source.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(
            f"cannot import model factory {source.factory!r} (pythonPath {source.python_path}): {exc}"
        ) from exc
    try:
        result = factory()
    except Exception as exc:  # user code: report it, with its name
        raise InvalidInput(f"model factory {source.factory} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise InvalidInput(
            f"factory {source.factory} must return (module, example_inputs[, output_names]), "
            f"got {type(result).__name__}"
        )
    module, examples = result[0], result[1]
    names = list(result[2]) if len(result) == 3 and result[2] is not None else None
    if not isinstance(module, torch.nn.Module):
        raise InvalidInput(f"factory {source.factory} returned {type(module).__name__}, not a torch.nn.Module")
    if isinstance(examples, torch.Tensor):
        examples = (examples,)
    if not isinstance(examples, Sequence) or not all(isinstance(t, torch.Tensor) for t in examples):
        raise InvalidInput(f"factory {source.factory}: example_inputs must be a tuple of tensors")
    if names is None and getattr(module, "output_names", None) is not None:
        names = list(module.output_names)
    return LoadedModel(module, tuple(examples), names, f"factory {source.factory}")


def load_exported_program(uri: str, sha256: str | None, workdir: Path, env: Mapping[str, str] | None) -> LoadedModel:
    local = workdir / "source" / "exported_program.pt2"
    try:
        directory, name = split_object_uri(uri)
        open_store(directory, env).download_file(name, local, expected_sha256=sha256)
    except ChecksumMismatch as exc:
        raise InvalidInput(f"model.exportedProgram: {exc}") from exc
    except ObjectNotFound as exc:
        raise InvalidInput(f"model.exportedProgram: {exc}") from exc
    except StorageError as exc:
        raise CompileFailed(f"model.exportedProgram: {exc}") from exc
    try:
        program = torch.export.load(str(local))
    except Exception as exc:  # torch raises many kinds for a file that is not an exported program
        raise InvalidInput(f"model.exportedProgram {uri} is not a torch.export.save() file: {exc}") from exc
    examples = None
    if program.example_inputs is not None:
        args, kwargs = program.example_inputs
        if kwargs:
            raise InvalidInput(
                f"{uri}: exported programs with keyword inputs are not supported; export with positional inputs"
            )
        examples = tuple(args)
    return LoadedModel(program.module(), examples, None, f"exported program {uri}")


def check_examples(loaded: LoadedModel, inputs: Sequence[TensorSpec]) -> None:
    """The model's example inputs must agree with spec.inputs (count, dtype kind, non-batch dims)."""
    if loaded.example_inputs is None:
        return
    examples = loaded.example_inputs
    if len(examples) != len(inputs):
        raise InvalidInput(
            f"{loaded.description} takes {len(examples)} inputs but spec.inputs declares {len(inputs)} "
            f"({', '.join(i.name for i in inputs)})"
        )
    for example, spec in zip(examples, inputs, strict=True):
        declared = list(spec.shape)
        # A floating input may be declared in another float type than the model's
        # examples (e.g. FP16 on the wire, an fp32 model): the export casts it.
        floating_pair = example.dtype.is_floating_point and spec.dtype.is_floating_point
        if example.dtype != spec.dtype and not floating_pair:
            raise InvalidInput(
                f"input {spec.name!r}: {loaded.description} gives {example.dtype} but spec.inputs declares {spec.dtype}"
            )
        if example.dim() != len(declared) or list(example.shape[1:]) != declared[1:]:
            raise InvalidInput(
                f"input {spec.name!r}: spec.inputs declares shape {declared} (-1 = batch) but "
                f"{loaded.description} gives an example of shape {list(example.shape)}"
            )
