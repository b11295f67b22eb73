"""`trtaoti compile` for real: CPU AOTInductor compiles of the examples, stored in
MinIO (s3://) and file://, fetched and verified by `trtaoti fetch`, loaded and
compared with the eager model at batch sizes across the compiled range.

Compiles take ~25 s each on 2 cores, so each artifact is built once per module and
every test reads it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch.utils._pytree import tree_flatten

from trtaoti.artifact import package_relpath, read_manifest
from trtaoti.storage import open_store

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
COMPILE_TIMEOUT = 900


@dataclass
class Artifact:
    store_uri: str
    env: dict[str, str]
    key: str
    manifest: dict[str, Any]  # as stored
    spec_path: Path
    factory: str  # to rebuild the eager model
    stdout: str


def trtaoti(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = COMPILE_TIMEOUT
) -> subprocess.CompletedProcess:
    """Run the CLI the way the compile Job and the init container do."""
    return subprocess.run(
        [sys.executable, "-m", "trtaoti.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def compile_example(spec_path: Path, profile: str, store_uri: str, env: dict[str, str]) -> Artifact:
    result = trtaoti(["compile", "--spec", str(spec_path), "--profile", profile, "--output", store_uri], env)
    assert result.returncode == 0, (
        f"exit {result.returncode}: {result.stderr[-3000:]}\n--- stdout:\n{result.stdout[-3000:]}"
    )
    store = open_store(store_uri, env)
    keys = {path.split("/")[0] for path in store.list() if path.endswith("manifest.json")}
    spec = yaml.safe_load(spec_path.read_text())
    key = next(k for k in keys if read_manifest(store, k).model_name == spec["metadata"]["name"])
    factory = (spec["spec"]["model"].get("python") or {}).get("factory", "twoinput.model:build")
    return Artifact(store_uri, env, key, read_manifest(store, key).to_wire(), spec_path, factory, result.stdout)


def example_factory(factory: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    module_name, _, attribute = factory.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def eager_model(factory: str) -> torch.nn.Module:
    return example_factory(factory)()[0].eval()


@pytest.fixture(scope="module")
def s3_store(s3: dict[str, str]) -> tuple[str, dict[str, str]]:
    return f"s3://{s3['TRTAOTI_TEST_BUCKET']}/compile-{secrets.token_hex(4)}", dict(s3)


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    store_uri = f"file://{tmp_path_factory.mktemp('store')}"
    return compile_example(EXAMPLES / "mlp" / "trtaotimodel.yaml", "online", store_uri, {})


@pytest.fixture(scope="module")
def twoinput_s3(s3_store: tuple[str, dict[str, str]]) -> Artifact:
    store_uri, env = s3_store
    return compile_example(EXAMPLES / "twoinput" / "trtaotimodel.yaml", "small", store_uri, env)


def export_twoinput(path: Path, max_batch: int) -> str:
    """torch.export.save() of the two-input example with a dynamic batch; returns its sha256."""
    model, examples = example_factory("twoinput.model:build")()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.export.export(model, examples, dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exported_program_spec(tmp: Path, uri: str, sha256: str, profile: dict[str, Any]) -> Path:
    spec = yaml.safe_load((EXAMPLES / "twoinput" / "trtaotimodel.yaml").read_text())
    spec["metadata"]["name"] = "twoinput-ep"
    spec["spec"]["model"] = {"exportedProgram": uri, "sha256": sha256}
    spec["spec"]["batchProfiles"] = [profile]
    path = tmp / f"ep-{profile['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def twoinput_exported_s3(s3_store: tuple[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    store_uri, env = s3_store
    tmp = tmp_path_factory.mktemp("ep")
    sha = export_twoinput(tmp / "ep.pt2", max_batch=64)
    open_store(store_uri, env).upload_file(tmp / "ep.pt2", "sources/twoinput/ep.pt2")
    spec_path = exported_program_spec(
        tmp, f"{store_uri}/sources/twoinput/ep.pt2", sha, {"name": "mid", "min": 2, "opt": 4, "max": 12}
    )
    return compile_example(spec_path, "mid", store_uri, env)


ARTIFACTS = ["mlp_file", "twoinput_s3", "twoinput_exported_s3"]


@pytest.mark.parametrize("artifact_name", ARTIFACTS)
def test_fetched_package_matches_eager_across_the_range(
    artifact_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    artifact: Artifact = request.getfixturevalue(artifact_name)
    manifest = artifact.manifest
    target = tmp_path / "models" / "model.pt2"
    fetched = trtaoti(
        ["fetch", manifest["uri"], "--sha256", manifest["sha256"], "--to", str(target)], artifact.env, timeout=120
    )
    assert fetched.returncode == 0, fetched.stderr
    assert hashlib.sha256(target.read_bytes()).hexdigest() == manifest["sha256"]
    assert target.stat().st_size == manifest["bytes"]

    runner = torch._inductor.aoti_load_package(str(target))
    metadata = runner.get_metadata()
    batch = manifest["batch"]
    assert metadata["trtaoti.artifact_key"] == artifact.key
    assert json.loads(metadata["trtaoti.inputs"]) == manifest["inputs"]
    assert json.loads(metadata["trtaoti.outputs"]) == manifest["outputs"]
    assert [metadata[f"trtaoti.batch_{k}"] for k in ("min", "opt", "max")] == [
        str(batch[k]) for k in ("min", "opt", "max")
    ]
    assert "trtaoti.requires_torchtrt_runtime" not in metadata
    assert manifest["validation"]["batches"] == sorted({batch["min"], batch["opt"], batch["max"]})
    assert set(manifest["latencyMs"]) == {"opt", "max"} and manifest["peakMemoryBytes"] > 0

    model = eager_model(artifact.factory)
    generator = torch.Generator().manual_seed(7)
    for size in sorted({batch["min"], batch["min"] + 1, (batch["min"] + batch["max"]) // 2, batch["max"]}):
        inputs = []
        for spec in manifest["inputs"]:
            shape = [size, *spec["shape"][1:]]
            if spec["datatype"] == "INT64":
                inputs.append(torch.randint(0, 16, shape, generator=generator))
            else:
                inputs.append(torch.randn(shape, generator=generator))
        with torch.no_grad():
            expected = tree_flatten(model(*inputs))[0]
        actual = tree_flatten(runner(*inputs))[0]
        assert len(actual) == len(manifest["outputs"])
        for out, got, want in zip(manifest["outputs"], actual, expected, strict=True):
            assert list(got.shape) == [size, *out["shape"][1:]], out["name"]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=f"{out['name']} at batch {size}")


def test_outputs_are_named_by_the_model(mlp_file: Artifact, twoinput_s3: Artifact) -> None:
    assert [o["name"] for o in mlp_file.manifest["outputs"]] == ["logits"]  # Mlp.output_names
    assert [(o["name"], o["shape"]) for o in twoinput_s3.manifest["outputs"]] == [
        ("logits", [-1, 10]),
        ("embedding", [-1, 32]),
    ]  # the keys of the dict the model returns
    assert [(i["name"], i["datatype"]) for i in twoinput_s3.manifest["inputs"]] == [
        ("image", "FP32"),
        ("class_id", "INT64"),
    ]


@pytest.mark.parametrize("artifact_name", ["mlp_file", "twoinput_s3"])
def test_second_compile_of_the_same_key_uploads_nothing(artifact_name: str, request: pytest.FixtureRequest) -> None:
    artifact: Artifact = request.getfixturevalue(artifact_name)
    store = open_store(artifact.store_uri, artifact.env)
    before = {path: store.head(path) for path in store.list(artifact.key)}
    spec = yaml.safe_load(artifact.spec_path.read_text())
    profile = spec["spec"]["batchProfiles"][0]["name"]
    result = trtaoti(
        ["compile", "--spec", str(artifact.spec_path), "--profile", profile, "--output", artifact.store_uri],
        artifact.env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "cache hit" in result.stdout
    after = {path: store.head(path) for path in store.list(artifact.key)}
    assert after == before  # same objects, same ETags and modification times


def test_corrupted_object_fails_fetch_and_leaves_nothing(twoinput_s3: Artifact, tmp_path: Path) -> None:
    store = open_store(twoinput_s3.store_uri, twoinput_s3.env)
    data = bytearray(store.get_bytes(package_relpath(twoinput_s3.key, twoinput_s3.manifest["sha256"])))
    data[len(data) // 2] ^= 0xFF
    store.put_bytes("corrupted/model.pt2", bytes(data))
    target = tmp_path / "models" / "model.pt2"
    result = trtaoti(
        [
            "fetch",
            f"{twoinput_s3.store_uri}/corrupted/model.pt2",
            "--sha256",
            twoinput_s3.manifest["sha256"],
            "--to",
            str(target),
        ],
        twoinput_s3.env,
        timeout=120,
    )
    assert result.returncode == 3
    assert "sha256 mismatch" in result.stderr
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_range_the_model_cannot_serve_fails_naming_inputs_and_range(
    s3_store: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    store_uri, env = s3_store
    sha = export_twoinput(tmp_path / "narrow.pt2", max_batch=16)
    open_store(store_uri, env).upload_file(tmp_path / "narrow.pt2", "sources/narrow/ep.pt2")
    spec_path = exported_program_spec(
        tmp_path, f"{store_uri}/sources/narrow/ep.pt2", sha, {"name": "wide", "min": 1, "opt": 8, "max": 64}
    )
    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    result = trtaoti(
        ["compile", "--spec", str(spec_path), "--profile", "wide", "--output", store_uri],
        {**env, "TRTAOTI_TERMINATION_LOG": str(termination_log)},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    for text in (result.stderr, termination_log.read_text()):
        assert "'image'" in text and "'class_id'" in text
        assert "[1, 64]" in text
    store = open_store(store_uri, env)
    manifests = [read_manifest(store, p.split("/")[0]) for p in store.list() if p.endswith("manifest.json")]
    assert all(m.profile != "wide" for m in manifests)


def test_a_package_that_disagrees_with_eager_fails_validation_naming_batch_inputs_and_output(
    mlp_file: Artifact, tmp_path: Path
) -> None:
    from trtaoti.api.models import TrtAotiModel
    from trtaoti.compiler.errors import ValidationFailed
    from trtaoti.compiler.plan import CompilePlan
    from trtaoti.compiler.validate import ValidationCase, validate_package

    store = open_store(mlp_file.store_uri)
    package = tmp_path / "model.pt2"
    store.download_file(
        package_relpath(mlp_file.key, mlp_file.manifest["sha256"]), package, expected_sha256=mlp_file.manifest["sha256"]
    )
    model = TrtAotiModel.model_validate(yaml.safe_load(mlp_file.spec_path.read_text()))
    plan = CompilePlan.from_spec(
        model.name, model.spec, model.spec.batch_profiles[0], key=mlp_file.key, compiler_image="x"
    )
    eager = eager_model(mlp_file.factory)
    cases = []
    for batch in plan.validation_batches:
        x = torch.randn(batch, 64)
        with torch.no_grad():
            expected = eager(x)
        if batch == plan.profile.max:
            expected = expected + 0.5  # what a miscompiled package would look like
        cases.append(ValidationCase(batch, (x,), [expected]))
    with pytest.raises(ValidationFailed) as failure:
        validate_package(
            package, plan, cases, output_names=["logits"], workdir=tmp_path, requires_torchtrt_runtime=False
        )
    message = str(failure.value)
    assert "batch 32" in message and "'features' [32, 64] FP32" in message and "output 'logits'" in message
    assert "max abs error 0.5" in message


def test_trtaoti_server_serves_the_compiled_package(twoinput_s3: Artifact, tmp_path: Path) -> None:
    """The package contract end to end: what `trtaoti compile` stamps is what
    trtaoti-server reads, and a KServe V2 client gets the eager model's answers."""
    import numpy as np
    import tritonclient.http as httpclient

    import server_support

    server_support.build_server()
    manifest = twoinput_s3.manifest
    package = tmp_path / "model.pt2"
    fetched = trtaoti(["fetch", manifest["uri"], "--sha256", manifest["sha256"], "--to", str(package)], twoinput_s3.env)
    assert fetched.returncode == 0, fetched.stderr
    model = eager_model(twoinput_s3.factory)
    with server_support.run_server(package) as server:
        client = httpclient.InferenceServerClient(server.url)
        metadata = client.get_model_metadata("twoinput")
        assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
            ("image", "FP32", [-1, 3, 32, 32]),
            ("class_id", "INT64", [-1]),
        ]
        assert [o["name"] for o in metadata["outputs"]] == ["logits", "embedding"]
        for batch in (1, 3, manifest["batch"]["max"]):
            image = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)
            class_id = np.arange(batch, dtype=np.int64) % 16
            inputs = [
                httpclient.InferInput("image", list(image.shape), "FP32"),
                httpclient.InferInput("class_id", [batch], "INT64"),
            ]
            inputs[0].set_data_from_numpy(image, binary_data=True)
            inputs[1].set_data_from_numpy(class_id, binary_data=True)
            result = client.infer("twoinput", inputs)
            with torch.no_grad():
                expected = model(torch.from_numpy(image), torch.from_numpy(class_id))
            for name in ("logits", "embedding"):
                np.testing.assert_allclose(
                    result.as_numpy(name),
                    expected[name].numpy(),
                    rtol=1e-4,
                    atol=1e-4,
                    err_msg=f"{name} at batch {batch}",
                )
