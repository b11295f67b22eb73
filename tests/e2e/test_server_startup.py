"""How trtaoti-server starts, or refuses to: clear messages and exit codes for bad
flags, missing packages, and packages that need the Torch-TensorRT runtime."""

from __future__ import annotations

import json
import subprocess

import pytest

import server_support as support

pytestmark = pytest.mark.e2e


def start(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    support.build_server()
    return subprocess.run(
        [str(support.SERVER_BIN), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def fatal_error(result: subprocess.CompletedProcess) -> str:
    for line in result.stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "fatal":
            return entry["error"]
    raise AssertionError(f"no fatal log line in: {result.stderr}")


def test_bad_flags_exit_2_naming_the_flag():
    result = start("--model", "x.pt2", "--port", "eighty")
    assert result.returncode == 2
    assert "--port needs a non-negative integer, got 'eighty'" in result.stderr
    result = start("--modle", "x.pt2")
    assert result.returncode == 2 and "unknown flag --modle" in result.stderr
    assert start("--help").returncode == 0


def test_missing_package_exits_1(tmp_path):
    result = start("--model", str(tmp_path / "absent.pt2"), "--port", "0")
    assert result.returncode == 1
    assert "does not exist" in fatal_error(result)


def test_package_that_needs_the_torchtrt_runtime_says_how_to_provide_it(tmp_path):
    package = support.build_package(2, 4, 8, extra_metadata={"trtaoti.requires_torchtrt_runtime": "true"})
    env = {"PATH": "/usr/bin:/bin"}  # no TRTAOTI_TORCHTRT_RUNTIME
    result = start("--model", str(package), "--port", "0", env=env)
    assert result.returncode == 1
    message = fatal_error(result)
    assert "libtorchtrt_runtime.so" in message and "--torchtrt-runtime" in message

    result = start("--model", str(package), "--port", "0", "--torchtrt-runtime", str(tmp_path / "nope.so"), env=env)
    assert result.returncode == 1
    assert "does not exist" in fatal_error(result)


def test_torchtrt_runtime_preload_is_dlopened_before_the_package():
    # No Torch-TensorRT on this machine: a real shared library without TensorRT ops
    # (libc10) stands in to show the preload path: flag -> dlopen(RTLD_GLOBAL) -> serve.
    import os

    import torch

    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libc10.so")
    with support.run_server(support.build_package(2, 4, 8), "--torchtrt-runtime", library) as server:
        loaded = server.log_entry("loaded the Torch-TensorRT runtime")
        assert loaded is not None and loaded["path"] == library
