"""The pydantic API models parse real manifests, fill defaults and refuse bad input."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from trtaoti.api.models import TrtAotiModel, TrtAotiModelSpec

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_MANIFESTS = sorted(
    path
    for path in (REPO / "examples").rglob("*.yaml")
    if any(doc and doc.get("kind") == "TrtAotiModel" for doc in yaml.safe_load_all(path.read_text()))
)

MINIMAL = """
apiVersion: trtaoti.dev/v1alpha1
kind: TrtAotiModel
metadata: {name: resnet50, namespace: ml}
spec:
  model: {exportedProgram: s3://models/resnet50/ep.pt2}
  inputs: [{name: x, dtype: float16, shape: [-1, 3, 224, 224]}]
  batchProfiles:
    - {name: online, min: 1, opt: 4, max: 16, replicas: 2, maxQueueDelayMicroseconds: 200}
    - {name: bulk, min: 32, opt: 128, max: 512}
  compile: {gpu: {product: NVIDIA-H100-80GB-HBM3}}
  storage: {uri: "s3://artifacts/trtaoti/", secretName: s3-credentials}
"""


def test_minimal_manifest_gets_defaults():
    model = TrtAotiModel.model_validate(yaml.safe_load(MINIMAL))
    spec = model.spec
    assert model.name == "resnet50"
    assert (spec.backend, spec.precision, spec.device) == ("tensorrt", "fp16", "cuda")
    assert spec.storage.retention_policy == "Retain"
    assert spec.profile("bulk").replicas == 1 and spec.profile("online").max_queue_delay_microseconds == 200
    assert spec.compile.timeout_seconds == 3600 and spec.serving.port == 8000
    policy = spec.profile("online").queue_policy
    assert (policy.priority_levels, policy.default_priority_level, policy.timeout_action) == (1, 1, "REJECT")
    assert spec.profile("online").queue_timeout_microseconds(spec.serving) == 30_000_000
    # Round trip: what the operator writes into the compile Job's ConfigMap reads back equal.
    assert TrtAotiModelSpec.model_validate(spec.to_wire()) == spec
    with pytest.raises(KeyError, match="no batch profile named 'nope'"):
        spec.profile("nope")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"batchProfiles": [{"name": "x", "min": 0, "opt": 1, "max": 1}]}, "min"),
        ({"inputs": [{"name": "x", "dtype": "complex64", "shape": [-1]}]}, "dtype"),
        ({"storage": {"uri": "http://example.com/x"}}, "uri"),
        ({"backend": "onnx"}, "backend"),
        ({"batchProfiles": [{"name": "x", "min": 1, "opt": 1, "max": 1, "queuePolicy": {"priorityLevels": 0}}]},
         "priorityLevels"),
        ({"batchProfiles": [{"name": "x", "min": 1, "opt": 1, "max": 1,
                             "queuePolicy": {"priorityLevels": 2, "defaultPriorityLevel": 3}}]},
         "defaultPriorityLevel must be <= priorityLevels"),
        ({"batchProfiles": [{"name": "x", "min": 1, "opt": 1, "max": 4, "cudaGraphMaxBatch": 8}]},
         "cudaGraphMaxBatch must be <= max"),
        ({"batchProfiles": [{"name": "x", "min": 1, "opt": 1, "max": 1, "queuePolicy": {"timeoutAction": "DROP"}}]},
         "timeoutAction"),
        ({"batchProfiles": [{"name": "x", "min": 1, "opt": 1, "max": 1,
                             "queuePolicy": {"defaultTimeoutMicroseconds": -1}}]},
         "defaultTimeoutMicroseconds"),
    ],
)  # fmt: skip
def test_bad_fields_are_named(change, field):
    raw = yaml.safe_load(MINIMAL)["spec"]
    raw.update(change)
    with pytest.raises(ValidationError, match=field):
        TrtAotiModelSpec.model_validate(raw)


@pytest.mark.skipif(not EXAMPLE_MANIFESTS, reason="no examples/ manifests yet")
@pytest.mark.parametrize("path", EXAMPLE_MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_examples_parse(path):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "TrtAotiModel":
            model = TrtAotiModel.model_validate(doc)
            assert model.spec.batch_profiles
