"""Every profile through the compiler's own pipeline, with a live progress display.

The compiler reports its stages as `step()` lines on stdout (the compile Job's log).
Here those same lines feed a rich spinner that shows the elapsed time and the current
stage, and are echoed above it, so `trtaoti run` shows what a Job log would show.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from trtaoti.api.models import TrtAotiModel
from trtaoti.compiler.pipeline import CompileOutcome, CompileRequest, compile_profile
from trtaoti.local.backend import BackendChoice

# "[compile +   3.2s] exported with batch ..." -> "exported with batch ..."
_STEP = re.compile(r"^\[compile \+\s*[0-9.]+s\]\s*(.*)$")


@dataclass
class CompiledProfile:
    profile: str
    outcome: CompileOutcome

    @property
    def manifest(self) -> dict[str, Any]:
        return self.outcome.manifest


class _StepSink(io.TextIOBase):
    """A stdout stand-in: every complete line goes to `on_line`."""

    def __init__(self, on_line) -> None:  # noqa: ANN001 - Callable[[str], None]
        self._on_line = on_line
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self._on_line(line)
        return len(text)

    def flush(self) -> None:
        pass


def compile_all(
    model: TrtAotiModel,
    profiles: list[str],
    store_uri: str,
    choice: BackendChoice,
    spec_dir: Path,
    console: Console,
) -> list[CompiledProfile]:
    """Compiles (or finds in the store) every named profile; CompileError propagates.

    `console` must write to an explicit file (not "whatever sys.stdout is"): stdout is
    redirected into the progress display while the compiler runs.
    """
    compiled = []
    for name in profiles:
        request = CompileRequest(
            model=model,
            profile=name,
            output_uri=store_uri,
            compiler_image="local",
            device=choice.device,
            backend=choice.backend,
            spec_dir=spec_dir,
        )
        outcome = _with_progress(request, console, f"{model.name}/{name}")
        verb = "cache hit" if outcome.cache_hit else "compiled"
        console.print(f"[bold green]{verb}[/] {model.name}/{name}: {outcome.model_uri}", highlight=False)
        compiled.append(CompiledProfile(name, outcome))
    return compiled


def _with_progress(request: CompileRequest, console: Console, label: str) -> CompileOutcome:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[label]}[/]"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task("starting", label=label)

    def on_line(line: str) -> None:
        match = _STEP.match(line)
        stage = match.group(1) if match else line
        if match:
            progress.update(task, description=_short(stage))
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)

    with progress, contextlib.redirect_stdout(_StepSink(on_line)):
        return compile_profile(request)


def _short(stage: str, width: int = 80) -> str:
    return stage if len(stage) <= width else stage[: width - 1] + "…"
