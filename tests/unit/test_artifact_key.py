"""The artifact key moves with what changes the compiled bytes, and only with that."""

import pytest

from trtaoti.api.models import TrtAotiModelSpec
from trtaoti.artifact import artifact_key

IMAGE = "registry.example/compiler:1"


def spec(**overrides):
    base = {
        "model": {"exportedProgram": "s3://models/resnet/ep.pt2", "sha256": "a" * 64},
        "inputs": [{"name": "x", "dtype": "float16", "shape": [-1, 3, 224, 224]}],
        "batchProfiles": [{"name": "online", "min": 1, "opt": 4, "max": 16}],
        "compile": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        "storage": {"uri": "s3://artifacts/trtaoti/"},
    }
    for path, value in overrides.items():
        node = base
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return TrtAotiModelSpec.model_validate(base)


def key_of(s, image=IMAGE, etag=None):
    return artifact_key(s, s.batch_profiles[0], compiler_image=image, source_etag=etag)


BASE_KEY = key_of(spec())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("batchProfiles.0.replicas", 7),
        ("batchProfiles.0.maxQueueDelayMicroseconds", 5000),
        ("batchProfiles.0.maxQueueSize", 9),
        ("serving", {"image": "other/server:2", "numRunners": 8, "port": 9000}),
        ("storage", {"uri": "s3://elsewhere/", "secretName": "creds", "retentionPolicy": "Delete"}),
        ("compile.timeoutSeconds", 7200),
        ("compile.backoffLimit", 3),
    ],
)
def test_serving_and_job_settings_keep_the_key(path, value):
    assert key_of(spec(**{path: value})) == BASE_KEY


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("batchProfiles.0.max", 32),
        ("batchProfiles.0.opt", 8),
        ("inputs.0.dtype", "float32"),
        ("inputs.0.shape", [-1, 3, 256, 256]),
        ("precision", "fp32"),
        ("backend", "inductor"),
        ("model.sha256", "b" * 64),
        ("compile.gpu.product", "NVIDIA-H200"),
        ("compile.minBlockSize", 9),
        ("compile.optimizationLevel", 5),
    ],
)
def test_compile_inputs_change_the_key(path, value):
    assert key_of(spec(**{path: value})) != BASE_KEY


def test_compiler_image_and_model_etag_are_part_of_the_identity():
    assert key_of(spec(), image="registry.example/compiler:2") != BASE_KEY
    unpinned = spec(model={"exportedProgram": "s3://models/resnet/ep.pt2"})
    assert key_of(unpinned, etag='"v1"') != key_of(unpinned, etag='"v2"')
    # The key is stable across processes: a restarted operator computes the same one.
    assert key_of(spec()) == BASE_KEY and len(BASE_KEY) == 32
