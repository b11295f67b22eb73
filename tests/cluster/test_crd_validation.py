"""The apiserver itself rejects bad TrtAotiModels (schema + CEL), naming the field,
and fills in defaults for good ones: errors surface at `kubectl apply`, not in a GPU Job."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from trtaoti.api.models import GROUP, PLURAL, VERSION

VALID = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "TrtAotiModel",
    "metadata": {"name": "resnet"},
    "spec": {
        "model": {"exportedProgram": "s3://models/resnet50/ep.pt2"},
        "inputs": [{"name": "x", "dtype": "float16", "shape": [-1, 3, 224, 224]}],
        "batchProfiles": [{"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 2}],
        "compile": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        "storage": {"uri": "s3://artifacts/trtaoti/", "secretName": "s3-credentials"},
    },
}


def mutated(mutate):
    body = copy.deepcopy(VALID)
    mutate(body)
    return body


def setp(path, value):
    def mutate(body):
        node = body
        *parents, leaf = path
        for part in parents:
            node = node[part]
        node[leaf] = value

    return mutate


def delp(path):
    def mutate(body):
        node = body
        *parents, leaf = path
        for part in parents:
            node = node[part]
        del node[leaf]

    return mutate


S = ("spec",)
P0 = (*S, "batchProfiles", 0)
INVALID = {
    "min above opt": (setp((*P0, "min"), 8), "spec.batchProfiles[0].min", "min must be <= opt"),
    "opt above max": (setp((*P0, "opt"), 32), "spec.batchProfiles[0].opt", "opt must be <= max"),
    "batch too large": (setp((*P0, "max"), 1 << 20), "spec.batchProfiles[0].max", "65536"),
    "cuda graphs above max": (
        setp((*P0, "cudaGraphMaxBatch"), 64),
        "spec.batchProfiles[0].cudaGraphMaxBatch",
        "cudaGraphMaxBatch must be <= max",
    ),
    "two model sources": (
        setp((*S, "model", "python"), {"factory": "pkg.mod:build"}),
        "spec.model",
        "exactly one of model.exportedProgram or model.python",
    ),
    "no model source": (setp((*S, "model"), {}), "spec.model", "exactly one of"),
    "two batch dimensions": (
        setp((*S, "inputs", 0, "shape"), [-1, -1, 224]),
        "spec.inputs[0].shape",
        "exactly one batch dimension",
    ),
    "batch dimension not first": (
        setp((*S, "inputs", 0, "shape"), [3, -1]),
        "spec.inputs[0].shape",
        "must come first",
    ),
    "zero-sized dimension": (setp((*S, "inputs", 0, "shape"), [-1, 0]), "spec.inputs[0].shape", "positive"),
    "unknown dtype": (setp((*S, "inputs", 0, "dtype"), "complex64"), "spec.inputs[0].dtype", "Unsupported value"),
    "duplicate profile names": (
        setp((*S, "batchProfiles"), [{"name": "a", "min": 1, "opt": 1, "max": 1}] * 2),
        "spec.batchProfiles[1]",
        "Duplicate value",
    ),
    "duplicate input names": (
        setp((*S, "inputs"), [{"name": "x", "dtype": "float16", "shape": [-1, 3]}] * 2),
        "spec.inputs[1]",
        "Duplicate value",
    ),
    "http storage": (setp((*S, "storage", "uri"), "http://minio/bucket"), "spec.storage.uri", "should match"),
    "tensorrt on cpu": (setp((*S, "device"), "cpu"), "spec.backend", "backend tensorrt requires device cuda"),
    "cuda without gpu product": (delp((*S, "compile")), "spec.compile", "requires compile.gpu.product"),
    "grpc on the http port": (
        setp((*S, "serving"), {"port": 8000, "grpcPort": 8000}),
        "spec.serving.grpcPort",
        "grpcPort must differ from port",
    ),
    "file storage": (
        setp((*S, "storage", "uri"), "file:///var/lib/trtaoti"),
        "spec.storage.uri",
        "works only with trtaoti run",
    ),
    "file model": (
        setp((*S, "model"), {"exportedProgram": "file:///home/me/ep.pt2"}),
        "spec.model.exportedProgram",
        "a compile Job reads it from s3://",
    ),
    "replicas above autoscaling max": (
        setp((*S, "serving"), {"autoscaling": {"maxReplicas": 1}}),
        "spec.serving",
        "maxReplicas must be >= every profile's replicas",
    ),
    "bad quantity": (
        setp((*S, "compile", "resources"), {"requests": {"memory": "16 gigs"}}),
        "spec.compile.resources.requests",
        "quantity",
    ),
    "request above limit": (
        setp((*S, "compile", "resources"), {"requests": {"memory": "32Gi"}, "limits": {"memory": "16Gi"}}),
        "spec.compile.resources.requests",
        "request must be <= its limit",
    ),
    "sha256 with python factory": (
        setp((*S, "model"), {"python": {"factory": "pkg.mod:build"}, "sha256": "a" * 64}),
        "spec.model.sha256",
        "pins an exportedProgram",
    ),
    "a queue-depth target on the cpu metric": (
        setp((*S, "serving"), {"autoscaling": {"maxReplicas": 4, "targetQueueDepth": 8}}),
        "spec.serving.autoscaling.targetQueueDepth",
        "targetQueueDepth applies to metric queueDepth",
    ),
    "one product and a fleet": (
        setp((*S, "compile", "gpu"), {"product": "NVIDIA-L4", "products": ["NVIDIA-L4", "NVIDIA-A100-SXM4-80GB"]}),
        "spec.compile.gpu.products",
        "set compile.gpu.product (one GPU) or compile.gpu.products (a fleet), not both",
    ),
    "a product listed twice": (
        setp((*S, "compile", "gpu"), {"products": ["NVIDIA-L4", "NVIDIA-L4"]}),
        "spec.compile.gpu.products[1]",
        "Duplicate value",
    ),
    "serving a product the fleet does not compile for": (
        setp((*S, "serving"), {"products": [{"name": "NVIDIA-L4", "replicas": 2}]}),
        "spec.serving.products",
        "every serving.products name must be listed in compile.gpu.products",
    ),
    "no priority levels": (
        setp((*P0, "queuePolicy"), {"priorityLevels": 0}),
        "spec.batchProfiles[0].queuePolicy.priorityLevels",
        "greater than or equal to 1",
    ),
    "default priority level beyond the levels": (
        setp((*P0, "queuePolicy"), {"priorityLevels": 2, "defaultPriorityLevel": 3}),
        "spec.batchProfiles[0].queuePolicy.defaultPriorityLevel",
        "defaultPriorityLevel must be <= priorityLevels",
    ),
    "unknown timeout action": (
        setp((*P0, "queuePolicy"), {"timeoutAction": "DROP"}),
        "spec.batchProfiles[0].queuePolicy.timeoutAction",
        "Unsupported value",
    ),
    "negative queue timeout": (
        setp((*P0, "queuePolicy"), {"defaultTimeoutMicroseconds": -1}),
        "spec.batchProfiles[0].queuePolicy.defaultTimeoutMicroseconds",
        "greater than or equal to 0",
    ),
    "profile name not a DNS label": (setp((*P0, "name"), "Online_1"), "spec.batchProfiles[0].name", "should match"),
    "name too long": (setp(("metadata", "name"), "m" * 41), "metadata.name", "at most 40"),
    "name not a DNS label": (setp(("metadata", "name"), "res.net"), "metadata.name", "DNS label"),
}


@pytest.fixture
def custom(cluster):
    with cluster.api_client() as api:
        yield client.CustomObjectsApi(api)


def create(custom, namespace, body, dry_run=True):
    return custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All" if dry_run else None
    )


@pytest.mark.parametrize("case", sorted(INVALID), ids=str)
def test_invalid_spec_is_rejected_naming_the_field(crd, custom, namespace, case):
    mutate, field, text = INVALID[case]
    with pytest.raises(client.ApiException) as caught:
        create(custom, namespace, mutated(mutate))
    assert caught.value.status == 422, caught.value.body
    message = json.loads(caught.value.body)["message"]
    assert field in message, f"{case}: {field!r} not named in {message}"
    assert text in message, f"{case}: {text!r} not in {message}"


def test_valid_model_is_accepted_with_defaults(crd, custom, namespace):
    created = create(custom, namespace, copy.deepcopy(VALID), dry_run=False)
    spec = created["spec"]
    assert spec["backend"] == "tensorrt" and spec["precision"] == "fp16" and spec["device"] == "cuda"
    assert spec["storage"]["retentionPolicy"] == "Retain"
    profile = spec["batchProfiles"][0]
    assert profile["maxQueueDelayMicroseconds"] == 100 and profile["maxQueueSize"] == 1024
    assert profile["queuePolicy"] == {
        "priorityLevels": 1,
        "defaultPriorityLevel": 1,
        "timeoutAction": "REJECT",
        "allowTimeoutOverride": False,
    }
    assert spec["compile"]["timeoutSeconds"] == 3600 and spec["compile"]["gpu"]["count"] == 1
    assert spec["serving"]["port"] == 8000 and spec["serving"]["numRunners"] == 2


def test_cpu_inductor_model_needs_no_gpu(crd, custom, namespace):
    body = mutated(setp(("spec",), {**VALID["spec"], "device": "cpu", "backend": "inductor", "compile": {}}))
    created = create(custom, namespace, body)
    assert created["spec"]["device"] == "cpu"


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_are_accepted(crd, custom, namespace, path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "TrtAotiModel"]
    assert docs, f"{path} holds no TrtAotiModel"
    for doc in docs:
        if doc["spec"]["storage"]["uri"].startswith("file://"):
            # The CPU examples are for `trtaoti run` on one machine; a cluster says why not.
            with pytest.raises(client.ApiException) as caught:
                create(custom, namespace, doc)
            message = json.loads(caught.value.body)["message"]
            assert "spec.storage.uri" in message and "trtaoti run" in message, message
            doc["spec"]["storage"]["uri"] = "s3://bucket/trtaoti"
        created = create(custom, namespace, doc)
        assert created["spec"]["storage"]["retentionPolicy"] in ("Retain", "Delete")
        assert all("maxQueueSize" in p for p in created["spec"]["batchProfiles"])
