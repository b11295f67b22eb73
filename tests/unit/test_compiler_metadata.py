"""What the compiler stamps into the package and writes to manifest.json, checked
against docs/package-format.md itself; and how it uses the artifact key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compiler_fixtures import example_document, example_model, plan_for
from support.artifacts import store_artifact
from trtaoti.api.models import TrtAotiModel
from trtaoti.artifact import InvalidManifest, Manifest, artifact_key, manifest_relpath, read_manifest
from trtaoti.compiler.errors import CompileFailed
from trtaoti.compiler.export import OutputSpec
from trtaoti.compiler.metadata import build_manifest, package_metadata
from trtaoti.compiler.pipeline import CompileRequest, compile_profile
from trtaoti.compiler.validate import ValidationReport
from trtaoti.storage import UploadResult, open_store

FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "package-format.md"
OUTPUTS = [OutputSpec("logits", "FP32", [-1, 10]), OutputSpec("embedding", "FP32", [-1, 32])]


def documented_metadata_keys() -> set[str]:
    keys = set()
    for line in FORMAT_DOC.read_text().splitlines():
        if line.startswith("| `trtaoti."):
            keys.update(re.findall(r"`(trtaoti\.[a-z_]+)`", line.split("|")[1]))
    return keys


def documented_manifest_keys() -> set[str]:
    block = re.search(r"`manifest.json`:\s*```json\n(.*?)```", FORMAT_DOC.read_text(), re.DOTALL).group(1)
    block = block.replace('"inputs": [...], "outputs": [...]', '"inputs": [], "outputs": []')
    return set(json.loads(block))


def test_every_documented_metadata_key_is_stamped() -> None:
    plan = plan_for(example_model("twoinput"))
    metadata = package_metadata(
        plan, OUTPUTS, {"torch": "2.14.0"}, requires_torchtrt_runtime=True, rewrites={"attention-batch-first": 2}
    )
    assert set(metadata) == documented_metadata_keys()
    assert json.loads(metadata["trtaoti.rewrites"]) == {"attention-batch-first": 2}
    assert all(isinstance(v, str) for v in metadata.values())


def test_metadata_values() -> None:
    model = example_model("twoinput", batchProfiles=[{"name": "p", "min": 2, "opt": 6, "max": 24}], precision="bf16")
    plan = plan_for(model, key="0123456789abcdef0123456789abcdef")
    metadata = package_metadata(plan, OUTPUTS, {"torch": "2.14.0"}, requires_torchtrt_runtime=False)
    assert json.loads(metadata["trtaoti.inputs"]) == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 3, 32, 32]},
        {"name": "class_id", "datatype": "INT64", "shape": [-1]},
    ]
    assert json.loads(metadata["trtaoti.outputs"]) == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "embedding", "datatype": "FP32", "shape": [-1, 32]},
    ]
    assert [metadata[f"trtaoti.batch_{k}"] for k in ("min", "opt", "max")] == ["2", "6", "24"]
    assert metadata["trtaoti.artifact_key"] == "0123456789abcdef0123456789abcdef"
    assert (metadata["trtaoti.model_name"], metadata["trtaoti.precision"], metadata["trtaoti.device"]) == (
        "twoinput",
        "bf16",
        "cpu",
    )
    assert metadata["trtaoti.format"] == "1"
    assert "trtaoti.requires_torchtrt_runtime" not in metadata
    assert ":" in metadata["trtaoti.inputs"] and ", " not in metadata["trtaoti.inputs"]  # compact JSON


def test_the_documented_manifest_is_the_manifest_model() -> None:
    declared = {field.alias or name for name, field in Manifest.model_fields.items()}
    assert documented_manifest_keys() | {"keyDocument"} == declared


def test_manifest_has_every_documented_field() -> None:
    model = example_model(
        "twoinput", backend="tensorrt", device="cuda", compile={"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}}
    )
    plan = plan_for(model)
    report = ValidationReport([1, 2, 8], 1e-3, 1e-2, 1e-2, {"opt": 0.5, "max": 1.5}, 900 << 20, 300 << 20)
    manifest = build_manifest(
        plan,
        model_uri=f"s3://b/p/{plan.key}/model.pt2",
        upload=UploadResult("ab" * 32, 1234),
        outputs=OUTPUTS,
        found_versions={"torch": "2.14.0"},
        report=report,
        gpu={"computeCapability": "9.0", "gpuName": "NVIDIA H100 80GB HBM3"},
        key_document=None,
    )
    assert manifest.key == plan.key and manifest.model == "model.pt2"
    manifest = json.loads(manifest.encode())  # as stored
    assert documented_manifest_keys() <= set(manifest)
    assert manifest["batch"] == {"min": 1, "opt": 2, "max": 8}
    assert manifest["gpuProduct"] == "NVIDIA-H100-80GB-HBM3" and manifest["computeCapability"] == "9.0"
    assert manifest["peakMemoryBytes"] == 900 << 20 and manifest["peakGpuMemoryBytes"] == 300 << 20
    assert manifest["validation"] == {"maxAbsError": 1e-3, "rtol": 1e-2, "atol": 1e-2, "batches": [1, 2, 8]}
    assert Manifest.parse(json.dumps(manifest), expected_key=plan.key).to_wire() == manifest


@pytest.fixture
def untouchable_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrtAotiModel:
    """A model whose factory fails the test if the compiler ever calls it."""
    (tmp_path / "untouchable_model.py").write_text(
        "def build():\n    raise RuntimeError('the factory must not run on a cache hit')\n"
    )
    document = example_document("mlp")
    document["spec"]["model"] = {"python": {"factory": "untouchable_model:build", "pythonPath": [str(tmp_path)]}}
    return TrtAotiModel.model_validate(document)


def test_existing_manifest_under_the_key_makes_compile_a_no_op(
    untouchable_factory: TrtAotiModel, tmp_path: Path
) -> None:
    store_uri = f"file://{tmp_path}/store"
    spec = untouchable_factory.spec
    key = artifact_key(spec, spec.batch_profiles[0], compiler_image="img:7")
    store = open_store(store_uri)
    stored = store_artifact(store, key, b"a package compiled earlier", device="cpu")
    before = store.list()

    outcome = compile_profile(
        CompileRequest(model=untouchable_factory, profile="online", output_uri=store_uri, compiler_image="img:7")
    )
    assert outcome.cache_hit and outcome.key == key
    assert outcome.model_uri == stored.uri and outcome.manifest == stored
    assert store.list() == before


def test_a_damaged_manifest_under_the_key_fails_the_compile_saying_how_to_recover(
    untouchable_factory: TrtAotiModel, tmp_path: Path
) -> None:
    store_uri = f"file://{tmp_path}/store"
    spec = untouchable_factory.spec
    key = artifact_key(spec, spec.batch_profiles[0], compiler_image="img:7")
    store = open_store(store_uri)
    store_artifact(store, key, b"a package compiled earlier", device="cpu")
    wire = json.loads(store.get_bytes(manifest_relpath(key)))
    del wire["sha256"]
    store.put_bytes(manifest_relpath(key), json.dumps(wire).encode())

    with pytest.raises(InvalidManifest, match=rf"manifest for {key} is invalid: sha256: Field required"):
        read_manifest(store, key)
    with pytest.raises(CompileFailed, match=rf"sha256: Field required; delete {store_uri}/{key}/ to compile it again"):
        compile_profile(
            CompileRequest(model=untouchable_factory, profile="online", output_uri=store_uri, compiler_image="img:7")
        )


def test_the_operators_key_wins(untouchable_factory: TrtAotiModel, tmp_path: Path) -> None:
    store_uri = f"file://{tmp_path}/store"
    store_artifact(open_store(store_uri), "operator-key", b"compiled by the operator's Job", device="cpu")
    outcome = compile_profile(
        CompileRequest(model=untouchable_factory, profile="online", output_uri=store_uri, key="operator-key")
    )
    assert outcome.cache_hit and outcome.key == "operator-key"


def test_a_different_compiler_image_is_a_different_artifact(untouchable_factory: TrtAotiModel, tmp_path: Path) -> None:
    from trtaoti.compiler.errors import InvalidInput

    store_uri = f"file://{tmp_path}/store"
    spec = untouchable_factory.spec
    store_artifact(
        open_store(store_uri), artifact_key(spec, spec.batch_profiles[0], compiler_image="img:7"), b"x", device="cpu"
    )
    with pytest.raises(InvalidInput, match="must not run on a cache hit"):
        compile_profile(
            CompileRequest(model=untouchable_factory, profile="online", output_uri=store_uri, compiler_image="img:8")
        )
    assert (
        read_manifest(open_store(store_uri), artifact_key(spec, spec.batch_profiles[0], compiler_image="img:8")) is None
    )
