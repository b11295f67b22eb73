"""`trtaoti run` for real on this machine: the CPU MLP example compiled by the
compiler pipeline into a local store, served by the real trtaoti-server, called with
tritonclient and compared with the eager model, stopped with Ctrl-C (SIGINT).

The store lives under ~/.cache/trtaoti/test-run-store (TRTAOTI_TEST_RUN_STORE moves
it) so a rerun reuses the compile (the compiler's own cache hit), as a user's would.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml
from tritonclient.utils import InferenceServerException

import server_support
from support.examples import mlp_eager_logits
from trtaoti.artifact import read_manifest
from trtaoti.storage import open_store

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "mlp" / "trtaotimodel.yaml"
STORE = Path(os.environ.get("TRTAOTI_TEST_RUN_STORE", Path.home() / ".cache/trtaoti/test-run-store"))
# A cold compile is ~30 s on 2 cores; the rest of a run a few seconds.
RUN_TIMEOUT = 600
SERVING = re.compile(r"^serving mlp/online at (http://127\.0\.0\.1:(\d+)) \(pid (\d+),")


@pytest.fixture(scope="module")
def server_binary() -> Path:
    return server_support.build_server()


class RunProcess:
    """`trtaoti run` as a user starts it, with its output collected line by line."""

    def __init__(self, *args: str, tmp_path: Path, spec: Path = SPEC, env: dict[str, str] | None = None,
                 store: str | None = None) -> None:  # fmt: skip
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trtaoti.cli", "run", str(spec),
             *(["--store", store or f"file://{STORE}"] if "--use-spec-storage" not in args else []),
             "--run-dir", str(tmp_path / "run"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TRTAOTI_SERVER": str(server_support.SERVER_BIN), **(env or {})},
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := pattern.match(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no line matching {pattern.pattern!r} (rc={self.process.poll()}):\n{self.output}"
                    )
                self._changed.wait(min(remaining, 1.0))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_run_serves_until_ctrl_c(server_binary: Path, tmp_path: Path) -> None:
    port = server_support_free_port()
    run = RunProcess("--port", str(port), tmp_path=tmp_path)
    try:
        match = run.wait_for_line(SERVING, RUN_TIMEOUT)
        run.wait_for_line(re.compile(r"^ready; Ctrl-C stops the servers$"), 60)
        base_url, served_port, pid = match.group(1), int(match.group(2)), int(match.group(3))
        assert served_port >= port
        assert "backend inductor on cpu: no CUDA device is visible to torch" in run.output

        # The printed tritonclient snippet and curl line name the served model and input.
        assert f'httpclient.InferenceServerClient("127.0.0.1:{served_port}")' in run.output
        assert f"curl -s -X POST {base_url}/v2/models/mlp/infer" in run.output

        client = httpclient.InferenceServerClient(f"127.0.0.1:{served_port}")
        features = np.random.default_rng(7).standard_normal((5, 64)).astype(np.float32)
        request = httpclient.InferInput("features", list(features.shape), "FP32")
        request.set_data_from_numpy(features)
        result = client.infer("mlp", [request])
        np.testing.assert_allclose(result.as_numpy("logits"), mlp_eager_logits(features), rtol=1e-4, atol=1e-5)
        # An idle keep-alive connection holds the server's drain for its 60 s keep-alive
        # timeout (cpp-httplib); a client that is done closes it, as curl does.
        client.close()

        run.process.send_signal(signal.SIGINT)
        assert run.wait(60) == 0, run.output
        assert "stopped" in run.lines
        assert process_gone(pid), f"trtaoti-server pid {pid} still running after trtaoti run exited"
        # Nothing listens there any more: the connection itself is refused.
        with pytest.raises((OSError, InferenceServerException)):
            httpclient.InferenceServerClient(f"127.0.0.1:{served_port}", connection_timeout=2).is_server_live()
    finally:
        run.kill()


def test_run_once_infers_and_exits_reusing_the_stored_compile(server_binary: Path, tmp_path: Path) -> None:
    # Whatever ran before, this run has the artifact in the store: make sure of it first.
    warm = RunProcess("--once", "--port", str(server_support_free_port()), tmp_path=tmp_path / "first")
    try:
        assert warm.wait(RUN_TIMEOUT) == 0, warm.output
    finally:
        warm.kill()

    run = RunProcess("--once", "--port", str(server_support_free_port()), tmp_path=tmp_path / "second")
    try:
        assert run.wait(120) == 0, run.output
    finally:
        run.kill()
    assert re.search(r"^cache hit mlp/online: file://", run.output, re.MULTILINE), run.output
    assert "AOTInductor: compiling the package" not in run.output
    assert re.search(r"^inference mlp/online, batch 4 of random inputs:$", run.output, re.MULTILINE), run.output
    assert re.search(r"^  logits FP32 \[4, 10\]: \[", run.output, re.MULTILINE), run.output
    pid = int(re.search(r"^serving mlp/online at \S+ \(pid (\d+),", run.output, re.MULTILINE).group(1))
    assert process_gone(pid)


def test_run_with_the_specs_s3_storage_downloads_the_verified_package(server_binary: Path, s3, tmp_path: Path) -> None:
    """--use-spec-storage: the artifact goes to MinIO (spec.storage.uri) and the server
    runs a sha256-verified download of it, as a serving pod's init container would."""
    document = yaml.safe_load(SPEC.read_text())
    prefix = f"run-local/{tmp_path.name}-{os.getpid()}"
    document["spec"]["storage"] = {"uri": f"s3://{s3['TRTAOTI_TEST_BUCKET']}/{prefix}"}
    document["spec"]["model"]["python"]["pythonPath"] = [str(REPO / "examples")]
    spec = tmp_path / "mlp-s3.yaml"
    spec.write_text(yaml.safe_dump(document))
    credentials = {k: v for k, v in s3.items() if k.startswith("AWS_")}
    run = RunProcess("--use-spec-storage", "--once", "--port", str(server_support_free_port()),
                     tmp_path=tmp_path, spec=spec, env=credentials)  # fmt: skip
    try:
        assert run.wait(RUN_TIMEOUT) == 0, run.output
    finally:
        run.kill()
    compiled = r"^compiled mlp/online: (s3://\S+/([0-9a-f]+)/model-[0-9a-f]{16}\.pt2)$"
    match = re.search(compiled, run.output, re.MULTILINE)
    assert match, run.output
    key = match.group(2)
    store = open_store(f"s3://{s3['TRTAOTI_TEST_BUCKET']}/{prefix}", env=credentials)
    manifest = read_manifest(store, key)
    assert manifest is not None
    downloaded = tmp_path / "run" / "packages" / key / manifest.model
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == manifest.sha256
    assert re.search(r"^  logits FP32 \[4, 10\]: \[", run.output, re.MULTILINE), run.output


def test_run_refuses_an_unknown_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trtaoti.cli", "run", str(SPEC), "--profile", "nope", "--store", f"file://{tmp_path}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--profile nope: mlp has no such batch profile (have: online)" in result.stderr


def server_support_free_port() -> int:
    from support.ports import free_port

    return free_port()
