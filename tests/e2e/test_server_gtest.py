"""Runs the server's GoogleTest suite (batcher, protocol, signature) so `make test`
covers the C++ unit tests: `make test` builds them (make server -> build.sh)."""

from __future__ import annotations

import subprocess

import pytest

import server_support

pytestmark = pytest.mark.e2e


def test_server_gtest_suite_passes():
    server_support.build_server()
    result = subprocess.run(
        [str(server_support.GTEST_BIN), "--gtest_brief=1"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASSED" in result.stdout
