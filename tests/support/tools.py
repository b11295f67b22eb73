"""Tools a test uses but does not build itself (helm, go, hadolint, the test extra's
packages): without one, a test skips on a developer's machine and fails under CI=true.

CI (.ci/run, with CI=true) installs every one of them through `make test`, so a skip
there would only hide a broken install step behind a green run. GPU tests are not
tools: they skip everywhere a GPU is missing, CI included, with the reason printed.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def tool_missing(message: str) -> NoReturn:
    """Skips the test (or module) with `message`; fails it under CI=true."""
    __tracebackhide__ = True  # report the test's line, not this one
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing tool fails the run instead of skipping)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def import_tool(module: str, why: str) -> ModuleType:
    """pytest.importorskip() that fails under CI=true."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        tool_missing(f"{module} does not import ({exc}): {why}")
