"""`trtaoti compile` refusing bad input: exit code 2 and a message naming the problem,
on stderr and in the termination log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compiler_fixtures import example_document
from trtaoti.cli import main
from trtaoti.compiler.progress import termination_summary


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    path.touch()
    monkeypatch.setenv("TRTAOTI_TERMINATION_LOG", str(path))
    return path


def compile_document(tmp_path: Path, document: dict, *extra: str, profile: str = "online") -> int:
    spec = tmp_path / "model.yaml"
    spec.write_text(yaml.safe_dump(document))
    return main(["compile", "--spec", str(spec), "--profile", profile, "--output", f"file://{tmp_path}/store", *extra])


def test_unknown_profile(tmp_path: Path, termination_log: Path, capsys) -> None:
    assert compile_document(tmp_path, example_document("mlp"), profile="nightly") == 2
    summary = json.loads(termination_log.read_text())
    assert (summary["ok"], summary["exitCode"]) == (False, 2)
    assert "no batch profile named 'nightly'" in summary["error"] and "online" in summary["error"]
    assert summary["error"] in capsys.readouterr().err


def test_a_long_error_is_cut_to_fit_kubernetes_and_stays_json() -> None:
    error = "compile failed: " + "x" * 10_000 + " the actual cause"
    text = termination_summary({"ok": False, "exitCode": 1, "error": error})
    assert len(text.encode()) <= 4096
    summary = json.loads(text)
    assert summary["exitCode"] == 1 and summary["error"].endswith(" the actual cause")


def test_inverted_batch_range(tmp_path: Path, termination_log: Path) -> None:
    document = example_document("mlp", batchProfiles=[{"name": "online", "min": 16, "opt": 4, "max": 32}])
    assert compile_document(tmp_path, document) == 2
    assert "min <= opt <= max, got 16, 4, 32" in termination_log.read_text()


def test_tensorrt_needs_cuda(tmp_path: Path, termination_log: Path) -> None:
    assert compile_document(tmp_path, example_document("mlp"), "--backend", "tensorrt") == 2
    assert "backend tensorrt requires device cuda" in termination_log.read_text()


def test_invalid_manifest_is_named(tmp_path: Path, termination_log: Path) -> None:
    document = example_document("mlp")
    del document["spec"]["inputs"]
    assert compile_document(tmp_path, document) == 2
    assert "is not a valid TrtAotiModel" in termination_log.read_text() and "inputs" in termination_log.read_text()


def test_missing_factory_is_named(tmp_path: Path, termination_log: Path) -> None:
    document = example_document("mlp")
    document["spec"]["model"]["python"]["factory"] = "no_such_module:build"
    assert compile_document(tmp_path, document) == 2
    assert "cannot import model factory 'no_such_module:build'" in termination_log.read_text()


def test_missing_exported_program_is_named(tmp_path: Path, termination_log: Path) -> None:
    document = example_document("mlp")
    document["spec"]["model"] = {"exportedProgram": f"file://{tmp_path}/models/absent.pt2"}
    assert compile_document(tmp_path, document) == 2
    assert "absent.pt2" in termination_log.read_text()


def test_the_operators_job_command_parses_and_its_key_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from trtaoti.cli import build_parser
    from trtaoti.compiler.errors import EXIT_INVALID_INPUT
    from trtaoti.resources import compile_job

    monkeypatch.setenv("TRTAOTI_ARTIFACT_KEY", "key-from-the-operator")
    argv = compile_job.compile_command("online", "s3://artifacts/trtaoti", "registry/compiler:1.0")[1:]
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    assert (args.profile, args.output, args.compiler_image) == (
        "online",
        "s3://artifacts/trtaoti",
        "registry/compiler:1.0",
    )
    assert str(args.spec) == f"{compile_job.SPEC_DIR}/{compile_job.SPEC_FILE}"
    assert args.key == "key-from-the-operator"
    assert EXIT_INVALID_INPUT == compile_job.EXIT_INVALID_INPUT
