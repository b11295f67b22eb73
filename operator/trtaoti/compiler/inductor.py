"""backend: inductor — the exported program compiled by AOTInductor into one package."""

from __future__ import annotations

from pathlib import Path

import torch


def compile_inductor(program: torch.export.ExportedProgram, package: Path, metadata: dict[str, str]) -> Path:
    """Compile for the device the program's weights and example inputs live on (CPU or CUDA)."""
    package.parent.mkdir(parents=True, exist_ok=True)
    torch._inductor.aoti_compile_and_package(
        program,
        package_path=str(package),
        inductor_configs={"aot_inductor.metadata": metadata},
    )
    return package
