"""trtaoti-server driven by the KServe Python SDK's own V2 REST client, unchanged:
readiness, JSON and binary tensors at batch sizes inside and around the compiled
range, answers equal to the eager model, and a bad request surfacing as the SDK's
HTTP error with our message. The SDK runs in its own process (kserve_sdk_client.py
says why)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import server_support as support
from support.tools import tool_missing

pytestmark = pytest.mark.e2e

# Looked up, not imported: importing kserve here would clash with tritonclient.grpc.
if importlib.util.find_spec("kserve") is None:
    tool_missing("the kserve SDK is in the test extra (pip install -e '.[test]')")

BATCH_MIN, BATCH_OPT, BATCH_MAX = 2, 4, 8
CLIENT = Path(__file__).with_name("kserve_sdk_client.py")


@pytest.fixture(scope="module")
def server():
    support.build_server()
    package = support.build_package(BATCH_MIN, BATCH_OPT, BATCH_MAX)
    with support.run_server(package, "--max-queue-delay-us", "500") as running:
        yield running


def run_sdk(
    server, tmp_path: Path, cases: dict[str, tuple[str, dict[str, np.ndarray]]], allow_unreadable_health: bool = False
) -> dict[str, np.ndarray]:
    arrays = {f"{name}/{tensor}": value for name, (_, tensors) in cases.items() for tensor, value in tensors.items()}
    np.savez(tmp_path / "requests.npz", cases=np.array([f"{n}:{enc}" for n, (enc, _) in cases.items()]), **arrays)
    done = subprocess.run(
        [
            sys.executable,
            str(CLIENT),
            server.base,
            support.MODEL_NAME,
            str(tmp_path / "requests.npz"),
            str(tmp_path / "results.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "results.npz") as results:
        found = {key: results[key] for key in results.files}
    if not allow_unreadable_health:
        assert "ready/error" not in found, found["ready/error"]
    return found


# 1 is below the compiled min (padded), 3 inside, 8 the max, 13 above it (split).
@pytest.mark.parametrize("encoding", ["json", "binary"])
def test_kserve_sdk_answers_equal_eager(server, tmp_path, encoding):
    batches = (1, BATCH_MIN, 3, BATCH_MAX, 13)
    cases = {}
    for seed, batch in enumerate(batches):
        x, mask = (t.numpy() for t in support.example_inputs(batch, seed=seed))
        cases[f"b{batch}"] = (encoding, {"x": x, "mask": mask})
    results = run_sdk(server, tmp_path, cases)
    for batch in batches:
        x, mask = cases[f"b{batch}"][1].values()
        expected_logits, expected_label = support.eager_outputs(x, mask)
        logits, label = results[f"b{batch}/logits"], results[f"b{batch}/label"]
        assert logits.shape == (batch, expected_logits.shape[1])
        np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(label, expected_label)


def test_kserve_sdk_sees_a_bad_request_as_400_with_our_message(server, tmp_path):
    x, mask = (t.numpy() for t in support.example_inputs(2))
    results = run_sdk(server, tmp_path, {"wrong": ("json", {"x": x.astype(np.float64), "mask": mask})})
    assert int(results["wrong/status"]) == 400
    message = str(results["wrong/error"])
    assert "x" in message and "FP64" in message
