"""Every profile through the compiler's own pipeline, with a live progress display.

The compiler reports its stages as `step()` lines on stdout (the compile Job's log).
Here those same lines feed a rich spinner that shows the elapsed time and the current
stage, and are echoed above it, so `trtaoti run` shows what a Job log would show.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from trtaoti.api.models import TrtAotiModel
from trtaoti.artifact import Manifest
from trtaoti.compiler.pipeline import CompileOutcome, CompileRequest, compile_profile
from trtaoti.local.backend import BackendChoice

# "[compile +   3.2s] exported with batch ..." -> "exported with batch ...";
# "[validate] running batch 4 ..." (the validation worker process) -> "validate: running ..."
_STEP = re.compile(r"^\[compile \+\s*[0-9.]+s\]\s*(.*)$")
_VALIDATE = re.compile(r"^\[validate\]\s*(.*)$")


@dataclass
class CompiledProfile:
    profile: str
    outcome: CompileOutcome

    @property
    def manifest(self) -> Manifest:
        return self.outcome.manifest


def compile_all(
    model: TrtAotiModel,
    profiles: list[str],
    store_uri: str,
    choice: BackendChoice,
    spec_dir: Path,
    console: Console,
) -> list[CompiledProfile]:
    """Compiles (or finds in the store) every named profile; CompileError propagates.

    `console` must write to an explicit file with a descriptor (the terminal): the
    process' stdout and stderr are redirected into the progress display meanwhile.
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
    # The terminal itself (a duplicate of descriptor 1 taken before it is redirected):
    # the progress display and the echoed lines must not feed back into the capture.
    terminal = os.fdopen(os.dup(console.file.fileno()), "w", buffering=1)
    display = Console(file=terminal, highlight=False, soft_wrap=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[label]}[/]"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=display,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task("starting", label=label)
    lock = threading.Lock()  # lines arrive from two reader threads

    def on_line(line: str) -> None:
        with lock:
            if match := _STEP.match(line):
                progress.update(task, description=_short(match.group(1)))
            elif match := _VALIDATE.match(line):
                progress.update(task, description=_short("validate: " + match.group(1)))
            display.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)

    try:
        with progress, _captured(1, on_line), _captured(2, on_line):
            return compile_profile(request)
    finally:
        terminal.close()


@contextlib.contextmanager
def _captured(fd: int, on_line: Callable[[str], None]) -> Iterator[None]:
    """Descriptor `fd` (1 or 2) into `on_line`, line by line, while the compiler runs.

    At the descriptor level, not sys.stdout: the compiler's validation worker and the
    C++ compiler that Inductor runs are child processes writing to inherited
    descriptors, and their lines would otherwise tear through the live progress line.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "r", errors="replace") as lines:
            for line in lines:
                if line.strip():
                    on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, name=f"compile-fd{fd}", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, fd)  # drops the pipe's last writer we hold: the reader sees EOF
        os.close(saved)
        reader.join(timeout=5)


def _short(stage: str, width: int = 80) -> str:
    return stage if len(stage) <= width else stage[: width - 1] + "…"
