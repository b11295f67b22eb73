"""bench/triton_baseline.py's model repository, from a package's metadata, without
Triton: the configuration must mirror what trtaoti-server serves (the e2e conformance
test checks it against a running Triton where the wheel is installed)."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import triton_baseline

METADATA = {
    "trtaoti.format": "1",
    "trtaoti.model_name": "encoder",
    "trtaoti.inputs": json.dumps([{"name": "input_ids", "datatype": "INT64", "shape": [-1, 128]}]),
    "trtaoti.outputs": json.dumps(
        [
            {"name": "hidden", "datatype": "FP16", "shape": [-1, 128, 768]},
            {"name": "score", "datatype": "FP32", "shape": [-1]},
        ]
    ),
    "trtaoti.batch_min": "1",
    "trtaoti.batch_opt": "8",
    "trtaoti.batch_max": "64",
    "AOTI_DEVICE_KEY": "cpu",
}


def _package(tmp_path: Path, metadata: dict) -> Path:
    """A zip laid out like an AOTInductor package: metadata JSON beside the library."""
    path = tmp_path / "model.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data/aotinductor/model/abc.wrapper.so", b"\0")
        archive.writestr("model/data/aotinductor/model/abc.wrapper_metadata.json", json.dumps(metadata))
    return path


def test_metadata_is_read_from_the_zip_without_loading(tmp_path):
    assert triton_baseline.package_metadata(_package(tmp_path, METADATA)) == METADATA
    with pytest.raises(ValueError, match="no trtaoti metadata"):
        triton_baseline.package_metadata(_package(tmp_path, {"AOTI_DEVICE_KEY": "cpu"}))


def test_config_mirrors_the_package_and_the_servers_batching(tmp_path):
    package = _package(tmp_path, METADATA)
    config = triton_baseline.model_config(
        METADATA, package, max_queue_delay_us=250, instances=2, intra_op_threads=3, device="cpu"
    )
    lines = [line.strip() for line in config.splitlines()]
    assert 'name: "encoder"' in lines and 'backend: "python"' in lines
    assert "max_batch_size: 64" in lines
    assert '{ name: "input_ids" data_type: TYPE_INT64 dims: [128] },' not in lines  # the last entry has no comma
    assert '{ name: "input_ids" data_type: TYPE_INT64 dims: [128] }' in lines
    assert '{ name: "hidden" data_type: TYPE_FP16 dims: [128, 768] },' in lines
    # Only the batch dimension: Triton's idiom, served as [n, 1] (docs/triton-differences.md).
    assert '{ name: "score" data_type: TYPE_FP32 dims: [1] reshape: { shape: [] } }' in lines
    assert "preferred_batch_size: [8, 64]" in lines
    assert "max_queue_delay_microseconds: 250" in lines
    assert "default_queue_policy { max_queue_size: 1024 }" in lines
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in lines
    assert f'parameters {{ key: "package" value: {{ string_value: "{package.resolve()}" }} }}' in lines
    assert 'parameters { key: "intra_op_threads" value: { string_value: "3" } }' in lines


def test_one_preferred_size_when_opt_is_the_max(tmp_path):
    metadata = {**METADATA, "trtaoti.batch_opt": "64"}
    config = triton_baseline.model_config(
        metadata, _package(tmp_path, metadata), max_queue_delay_us=0, instances=1, intra_op_threads=1, device="cpu"
    )
    assert "preferred_batch_size: [64]" in [line.strip() for line in config.splitlines()]
