"""Every benchmark script starts the way its docstring says it is run (`python3
bench/NAME.py ...`, from any directory): its imports resolve and its options parse.
The GPU scripts run on a machine reached once a session, where an import error costs
a whole device call; this is where one is found first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# triton_aoti_model.py runs inside Triton's Python backend; models.py and __init__.py are imported.
SCRIPTS = sorted(
    p.name for p in (REPO / "bench").glob("*.py") if p.name not in {"__init__.py", "models.py", "triton_aoti_model.py"}
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO / "operator")  # what `pip install -e .` gives; nothing from tests/
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
