"""Validation verdicts: tolerance rules, and a worker that cannot finish is a failure
with a message, never a hang."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compiler_fixtures import example_model, plan_for
from trtaoti.compiler.errors import CompileFailed
from trtaoti.compiler.validate import ValidationCase, tolerances, validate_package, worker_env
from trtaoti.compiler.validate_worker import compare


def request(precision: str = "fp32", rtol: float = 1e-3, atol: float = 1e-4) -> dict:
    return {"output_names": ["logits", "ids"], "rtol": rtol, "atol": atol, "precision": precision}


def test_within_tolerance_passes_and_reports_the_worst_error() -> None:
    want = [torch.tensor([[1.0, -2.0]]), torch.tensor([[3]])]
    got = [torch.tensor([[1.0005, -2.0]]), torch.tensor([[3]])]
    error, worst = compare(got, want, request())
    assert error is None and worst == pytest.approx(5e-4, rel=1e-3)


def test_outside_tolerance_names_the_output_and_the_error() -> None:
    want = [torch.zeros(2, 4), torch.zeros(2, 1, dtype=torch.int64)]
    got = [torch.zeros(2, 4), torch.zeros(2, 1, dtype=torch.int64)]
    got[0][1, 3] = 0.5
    error, _ = compare(got, want, request())
    assert error == (
        "output 'logits' differs from the eager model: max abs error 0.5, 1 of 8 elements outside "
        "rtol 0.001 / atol 0.0001"
    )


def test_integer_outputs_exact_at_fp32_not_compared_at_fp16() -> None:
    want = [torch.zeros(2, 4), torch.tensor([[1], [2]])]
    got = [torch.zeros(2, 4), torch.tensor([[1], [5]])]
    assert "output 'ids': 1 of 2 integer elements differ" in compare(got, want, request("fp32"))[0]
    assert compare(got, want, request("fp16", 1e-2, 1e-2))[0] is None


def test_nan_where_eager_is_finite_fails() -> None:
    error, _ = compare(
        [torch.tensor([float("nan")]), torch.tensor([1])], [torch.tensor([0.0]), torch.tensor([1])], request()
    )
    assert error is not None and "1 of 1 elements" in error


def test_shape_and_count_mismatches() -> None:
    assert "has shape [3]" in compare([torch.zeros(3), torch.zeros(1)], [torch.zeros(2), torch.zeros(1)], request())[0]
    assert (
        "returned 1 outputs, the eager model 2"
        in compare([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)], request())[0]
    )


def test_tolerances_by_precision_and_overrides() -> None:
    assert tolerances(plan_for(example_model("mlp", precision="fp32"))) == (1e-3, 1e-4)
    assert tolerances(plan_for(example_model("mlp", precision="fp16"))) == (1e-2, 1e-2)
    assert tolerances(plan_for(example_model("mlp", precision="bf16", compile={"rtol": 0.2, "atol": 0.3}))) == (
        0.2,
        0.3,
    )


def test_a_worker_past_its_deadline_is_killed_and_named(tmp_path: Path) -> None:
    plan = plan_for(example_model("mlp"))
    case = ValidationCase(1, (torch.zeros(1, 64),), [torch.zeros(1, 10)])
    with pytest.raises(CompileFailed, match=r"validation timed out after 0s while starting"):
        validate_package(
            tmp_path / "model.pt2",
            plan,
            [case],
            output_names=["logits"],
            workdir=tmp_path,
            requires_torchtrt_runtime=False,
            timeout_seconds=0.3,
        )


def test_a_package_that_does_not_load_fails_retryably(tmp_path: Path) -> None:
    plan = plan_for(example_model("mlp"))
    (tmp_path / "model.pt2").write_bytes(b"not a zip archive")
    case = ValidationCase(1, (torch.zeros(1, 64),), [torch.zeros(1, 10)])
    with pytest.raises(CompileFailed, match="cannot load the package"):
        validate_package(
            tmp_path / "model.pt2",
            plan,
            [case],
            output_names=["logits"],
            workdir=tmp_path,
            requires_torchtrt_runtime=False,
            timeout_seconds=120,
        )


def test_ld_preload_only_for_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert "LD_PRELOAD" not in worker_env(plan_for(example_model("mlp")))
    cuda = plan_for(example_model("mlp", device="cuda", compile={"gpu": {"product": "X"}}))
    assert ("LD_PRELOAD" in worker_env(cuda)) == Path("/usr/lib/x86_64-linux-gnu/libstdc++.so.6").exists()
