"""Compile Job, serving Deployment/Service/PDB/HPA manifests built from a spec."""

import copy

import pytest

from trtaoti.api.models import Artifact, TrtAotiModelSpec
from trtaoti.resources import compile_job, names, serving
from trtaoti.resources.config import ChildSettings
from trtaoti.resources.owner import Owner
from trtaoti.resources.targets import targets

OWNER = Owner(name="resnet", namespace="ml", uid="1234-abcd")
SETTINGS = ChildSettings(compiler_image="reg/compiler:1", server_image="reg/server:1", fetch_image="reg/op:1")
KEY = "0123456789abcdef0123456789abcdef"
GPU = "NVIDIA-H100-80GB-HBM3"
BASE = {
    "model": {"exportedProgram": "s3://models/resnet/ep.pt2"},
    "inputs": [{"name": "x", "dtype": "float16", "shape": [-1, 3, 224, 224]}],
    "batchProfiles": [
        {"name": "online", "min": 1, "opt": 4, "max": 16, "replicas": 2, "maxQueueDelayMicroseconds": 200},
        {"name": "bulk", "min": 32, "opt": 128, "max": 512},
    ],
    "compile": {"gpu": {"product": GPU}, "resources": {"requests": {"cpu": "4", "memory": "16Gi"}}},
    "storage": {"uri": "s3://artifacts/trtaoti", "secretName": "s3-creds"},
}


def make_spec(**changes):
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return TrtAotiModelSpec.model_validate(raw)


def artifact(**changes):
    data = {
        "uri": f"s3://artifacts/trtaoti/{KEY}/model.pt2",
        "sha256": "f" * 64,
        "bytes": 100 << 20,
        "key": KEY,
        "device": "cuda",
        "gpuProduct": GPU,
        "batch": {"min": 1, "opt": 4, "max": 16},
        "peakMemoryBytes": 2 << 30,
    }
    data.update(changes)
    return Artifact.model_validate(data)


def target(spec, profile="online", product=None):
    """The spec's target for `profile` (on `product` in a fleet)."""
    return next(t for t in targets(spec) if t.profile.name == profile and product in (None, t.product))


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def assert_restricted(pod):
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod.get("initContainers", []) + pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["readOnlyRootFilesystem"] is True
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


class TestCompileJob:
    def build(self, spec=None, profile="online"):
        spec = spec or make_spec()
        return compile_job.build_compile_job(OWNER, spec, target(spec, profile), KEY, SETTINGS)

    def test_identity_labels_and_owner(self):
        job = self.build()
        meta = job["metadata"]
        assert meta["name"] == names.compile_job_name("resnet", "online", KEY)
        assert meta["name"].endswith(KEY[:8]) and len(meta["name"]) <= 63
        assert meta["labels"][names.LABEL_ARTIFACT_KEY] == KEY
        assert meta["labels"][names.LABEL_PROFILE] == "online"
        assert meta["labels"][names.LABEL_MODEL] == "resnet"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "trtaoti-operator"
        assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]
        (ref,) = meta["ownerReferences"]
        assert ref["uid"] == OWNER.uid and ref["controller"] is True and ref["kind"] == "TrtAotiModel"

    def test_lands_on_the_gpu_product_with_a_gpu(self):
        job = self.build()
        pod = pod_spec(job)
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": GPU}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
        assert pod["restartPolicy"] == "Never"
        assert_restricted(pod)

    def test_runs_trtaoti_compile_on_the_mounted_spec(self):
        job = self.build()
        (container,) = pod_spec(job)["containers"]
        assert container["image"] == "reg/compiler:1"
        assert container["command"] == [
            "trtaoti", "compile", "--spec", "/etc/trtaoti/model.yaml", "--profile", "online",
            "--output", "s3://artifacts/trtaoti", "--compiler-image", "reg/compiler:1", "--gpu-product", GPU,
        ]  # fmt: skip
        assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
        volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == "spec")
        assert volume["configMap"]["name"] == job["metadata"]["name"]
        assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 3600

    def test_config_map_carries_the_spec_the_compiler_parses(self):
        import yaml

        from trtaoti.api.models import TrtAotiModel

        spec = make_spec()
        cm = compile_job.build_spec_config_map(OWNER, spec, target(spec), KEY)
        parsed = TrtAotiModel.model_validate(yaml.safe_load(cm["data"]["model.yaml"]))
        assert parsed.name == "resnet" and parsed.spec == spec

    def test_cpu_device_requests_no_gpu(self):
        spec = make_spec(device="cpu", backend="inductor", compile={"resources": {"limits": {"nvidia.com/gpu": 1}}})
        pod = pod_spec(self.build(spec))
        assert "nodeSelector" not in pod and "tolerations" not in pod
        assert "nvidia.com/gpu" not in str(pod["containers"][0].get("resources"))

    def test_spec_image_overrides_the_default(self):
        spec = make_spec(compile={"gpu": {"product": GPU}, "image": "mine/compiler:9"})
        (container,) = pod_spec(self.build(spec))["containers"]
        assert container["image"] == "mine/compiler:9"
        assert container["command"][container["command"].index("--compiler-image") + 1] == "mine/compiler:9"


class TestServing:
    def build(self, spec=None, profile="online", art=None):
        spec = spec or make_spec()
        return serving.build_deployment(OWNER, spec, target(spec, profile), art or artifact(), SETTINGS)

    def test_fetch_then_serve_the_artifact(self):
        deployment = self.build()
        pod = pod_spec(deployment)
        (fetch,) = pod["initContainers"]
        assert fetch["command"] == [
            "trtaoti", "fetch", f"s3://artifacts/trtaoti/{KEY}/model.pt2", "--sha256", "f" * 64,
            "--to", "/models/model.pt2",
        ]  # fmt: skip # argv: flags beside their values
        assert fetch["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
        (server,) = pod["containers"]
        args = server["args"]
        flags = dict(zip(args[::2], args[1::2], strict=True))
        assert flags == {
            "--model-path": "/models/model.pt2",
            "--model-name": "resnet",
            "--port": "8000",
            "--grpc-port": "8001",
            "--max-queue-delay-us": "200",
            "--max-queue-size": "1024",
            # One FIFO queue, REJECT, and serving.requestTimeoutMilliseconds' 30 s.
            "--priority-levels": "1",
            "--default-priority-level": "1",
            "--default-queue-timeout-us": "30000000",
            "--timeout-action": "reject",
            "--num-runners": "2",
            "--device": "cuda:0",
            # The server checks the fetched file again (disk faults after the fetch).
            "--sha256": "f" * 64,
        }
        assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert server["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": GPU}
        assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert_restricted(pod)

    def test_a_profiles_queue_policy_becomes_the_servers_flags(self):
        profiles = copy.deepcopy(BASE["batchProfiles"])
        profiles[0]["queuePolicy"] = {
            "priorityLevels": 3,
            "defaultPriorityLevel": 2,
            "defaultTimeoutMicroseconds": 2500,
            "timeoutAction": "DELAY",
            "allowTimeoutOverride": True,
        }
        spec = make_spec(batchProfiles=profiles, serving={"requestTimeoutMilliseconds": 900})
        args = serving.server_args("resnet", spec, spec.profile("online"), artifact())
        assert args[-1] != "--allow-timeout-override"  # the switch sits with the queue flags
        assert "--allow-timeout-override" in args
        args.remove("--allow-timeout-override")
        flags = dict(zip(args[::2], args[1::2], strict=True))
        assert {k: flags[k] for k in ("--priority-levels", "--default-priority-level")} == {
            "--priority-levels": "3",
            "--default-priority-level": "2",
        }
        assert flags["--default-queue-timeout-us"] == "2500"  # the profile's own beats the model-wide 900 ms
        assert flags["--timeout-action"] == "delay"
        # The other profile keeps the model-wide timeout and no override.
        bulk = serving.server_args("resnet", spec, spec.profile("bulk"), artifact())
        assert "--allow-timeout-override" not in bulk
        assert dict(zip(bulk[::2], bulk[1::2], strict=True))["--default-queue-timeout-us"] == "900000"

    def test_cuda_graphs_asked_for_on_a_gpu_profile_reach_the_server(self):
        profiles = copy.deepcopy(BASE["batchProfiles"])
        profiles[0]["cudaGraphMaxBatch"] = 16
        spec = make_spec(batchProfiles=profiles)
        args = serving.server_args("resnet", spec, spec.profile("online"), artifact())
        assert dict(zip(args[::2], args[1::2], strict=True))["--cuda-graph-max-batch"] == "16"
        assert "--cuda-graph-max-batch" not in serving.server_args("resnet", spec, spec.profile("bulk"), artifact())
        # A CPU package has no graphs to capture: the flag is left out.
        cpu = make_spec(batchProfiles=profiles, device="cpu")
        assert "--cuda-graph-max-batch" not in serving.server_args(
            "resnet", cpu, cpu.profile("online"), artifact(device="cpu")
        )

    def test_the_batch_range_is_left_to_the_package(self):
        # The server reads it from the package; a flag would override the package's own.
        old = artifact(batch={"min": 2, "opt": 8, "max": 32})
        args = pod_spec(self.build(art=old))["containers"][0]["args"]
        assert not [a for a in args if a.startswith("--batch")], args

    def test_memory_request_from_measured_peak_plus_headroom(self):
        server = pod_spec(self.build())["containers"][0]
        expected_mib = -(-int((2 << 30) * 1.25 + (256 << 20)) // (1 << 20))
        assert server["resources"]["requests"]["memory"] == f"{expected_mib}Mi"
        spec = make_spec(serving={"resources": {"requests": {"memory": "3Gi"}}})
        server = pod_spec(self.build(spec))["containers"][0]
        assert server["resources"]["requests"]["memory"] == "3Gi"

    def test_a_limit_alone_is_never_undercut_by_a_computed_request(self):
        # The measured default (2.75 GiB here) above a 2Gi limit would be rejected by the apiserver.
        limited = make_spec(
            serving={"resources": {"limits": {"memory": "2Gi", "cpu": "500m"}}, "autoscaling": {"maxReplicas": 3}}
        )
        resources = pod_spec(self.build(limited))["containers"][0]["resources"]
        assert "requests" not in resources  # Kubernetes makes each request equal its limit
        assert resources["limits"]["memory"] == "2Gi" and resources["limits"]["cpu"] == "500m"

    def test_rest_and_grpc_are_served_and_exposed(self):
        spec = make_spec(serving={"port": 9000, "grpcPort": 9001})
        deployment = self.build(spec)
        server = pod_spec(deployment)["containers"][0]
        args = server["args"]
        ports = {p["name"]: p["containerPort"] for p in server["ports"]}
        assert ports == {"http": 9000, "grpc": 9001}
        assert args[args.index("--port") + 1] == "9000" and args[args.index("--grpc-port") + 1] == "9001"
        service = serving.build_service(OWNER, spec, spec.profile("online"))
        assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
            "http": (9000, "http"),
            "grpc": (9001, "grpc"),
        }

    def test_pods_keep_serving_until_endpoints_forget_them(self):
        pod = pod_spec(self.build())
        sleep = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        # The drain after the sleep must still fit the termination grace period.
        assert 0 < sleep < pod.get("terminationGracePeriodSeconds", 30) / 2

    def test_new_artifact_changes_the_pod_template(self):
        a = self.build()
        b = self.build(art=artifact(sha256="e" * 64, key="f" * 32))
        assert a["spec"]["template"] != b["spec"]["template"]
        assert b["spec"]["template"]["metadata"]["annotations"][names.ANNOTATION_ARTIFACT_SHA256] == "e" * 64
        # ... but never the selector (immutable on Deployments).
        assert a["spec"]["selector"] == b["spec"]["selector"]
        assert serving.served_artifact(b).key == "f" * 32

    def test_replicas_and_scratch_volumes(self):
        deployment = self.build()
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        assert set(volumes) == {"models", "tmp"} and "emptyDir" in volumes["tmp"]

    def test_service_targets_the_profile_pods(self):
        spec = make_spec()
        service = serving.build_service(OWNER, spec, spec.profile("online"))
        deployment = self.build()
        assert service["metadata"]["name"] == deployment["metadata"]["name"] == "resnet-online"
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
        assert service["spec"]["ports"][0]["port"] == 8000

    def test_pdb_only_with_more_than_one_replica(self):
        spec = make_spec()
        assert serving.wants_disruption_budget(spec, target(spec, "online"))
        assert not serving.wants_disruption_budget(spec, target(spec, "bulk"))
        pdb = serving.build_disruption_budget(OWNER, target(spec, "online"))
        assert pdb["spec"]["maxUnavailable"] == 1

    def test_autoscaling_hands_replicas_to_the_hpa(self):
        spec = make_spec(serving={"autoscaling": {"maxReplicas": 6}})
        deployment = self.build(spec)
        assert "replicas" not in deployment["spec"]
        assert pod_spec(deployment)["containers"][0]["resources"]["requests"]["cpu"] == "1"
        hpa = serving.build_autoscaler(OWNER, spec, target(spec))
        assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 6
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert serving.build_autoscaler(OWNER, make_spec(), target(spec)) is None

    @staticmethod
    def live_deployment(replicas, managers):
        """A Deployment as the apiserver returns it: `managers` = (manager, operation, owns replicas)."""
        return {
            "metadata": {
                "name": "resnet-online",
                "namespace": "ml",
                "managedFields": [
                    {
                        "manager": manager,
                        "operation": operation,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {"f:replicas": {}} if owns else {"f:template": {}}},
                    }
                    for manager, operation, owns in managers
                ],
            },
            "spec": {"replicas": replicas},
        }

    def test_replicas_pass_to_a_second_manager_before_ours_lets_go(self):
        replicas = make_spec().profile("online").replicas  # 2
        ours = self.live_deployment(3, [("trtaoti-operator", "Apply", True)])
        handover = serving.replicas_handover(ours, "trtaoti-operator", replicas)
        assert handover["metadata"] == {"name": "resnet-online", "namespace": "ml"}
        # Only replicas, never below what runs now or the HPA's minimum.
        assert handover["spec"] == {"replicas": 3}
        below_minimum = self.live_deployment(1, [("trtaoti-operator", "Apply", True)])
        assert serving.replicas_handover(below_minimum, "trtaoti-operator", replicas)["spec"] == {"replicas": 2}

    def test_no_handover_once_someone_else_holds_replicas(self):
        replicas = make_spec().profile("online").replicas
        hpa_owned = self.live_deployment(4, [("trtaoti-operator", "Apply", False),
                                             ("trtaoti-operator-handover", "Apply", True),
                                             ("kube-controller-manager", "Update", True)])  # fmt: skip
        assert serving.replicas_handover(hpa_owned, "trtaoti-operator", replicas) is None
        # An Update by the same name (kubectl scale --field-manager) is not our apply.
        updated = self.live_deployment(4, [("trtaoti-operator", "Update", True)])
        assert serving.replicas_handover(updated, "trtaoti-operator", replicas) is None

    def test_cpu_artifact_serves_on_cpu_without_gpu(self):
        spec = make_spec(device="cpu", backend="inductor")
        deployment = self.build(spec, art=artifact(device="cpu", gpuProduct=None))
        pod = pod_spec(deployment)
        assert "nodeSelector" not in pod
        args = pod["containers"][0]["args"]
        assert args[args.index("--device") + 1] == "cpu"


@pytest.mark.parametrize("model", ["m", "a" * 40])
@pytest.mark.parametrize("profile", ["p", "b" * 16])
def test_child_names_are_dns_labels_and_deterministic(model, profile):
    job = names.compile_job_name(model, profile, KEY)
    other = names.compile_job_name(model, profile, "9" * 32)
    for name in (job, other, names.serving_name(model, profile)):
        assert len(name) <= 63 and name[0].isalpha() and name[-1].isalnum()
    assert job != other and job == names.compile_job_name(model, profile, KEY)


def test_image_overrides_outside_the_allowed_prefixes_are_refused():
    anything = ChildSettings()
    assert anything.image_refusal("spec.compile.image", "evil.example/miner:1") is None  # default: any image
    strict = ChildSettings(compiler_image="ghcr.io/trtaoti/compiler:1.2.3",
                           allowed_image_prefixes=("registry.example.com/ml/",))  # fmt: skip
    assert strict.image_refusal("spec.compile.image", None) is None
    assert strict.image_refusal("spec.compile.image", "registry.example.com/ml/compiler:2") is None
    assert strict.image_refusal("spec.serving.image", "ghcr.io/trtaoti/compiler:1.2.3") is None  # a configured one
    refusal = strict.image_refusal("spec.serving.image", "evil.example/miner:1")
    assert "spec.serving.image evil.example/miner:1" in refusal and "registry.example.com/ml/" in refusal


class TestFleet:
    """compile.gpu.products: one compile Job and one Deployment per (profile, product)."""

    PRODUCTS = (GPU, "NVIDIA-L4", "NVIDIA-A100-SXM4-80GB")

    def spec(self, **serving):
        return make_spec(
            compile={"gpu": {"products": self.PRODUCTS}},
            **({"serving": serving} if serving else {}),
        )

    def test_every_profile_has_a_target_per_product(self):
        spec = self.spec()
        assert [(t.profile.name, t.product) for t in targets(spec)] == [
            (profile, product) for profile in ("online", "bulk") for product in self.PRODUCTS
        ]
        assert {t.label for t in targets(spec)} >= {"online on NVIDIA-L4", "bulk on NVIDIA-A100-SXM4-80GB"}

    def test_each_compile_job_runs_on_its_product_and_says_which(self):
        spec = self.spec()
        for product in self.PRODUCTS:
            job = compile_job.build_compile_job(OWNER, spec, target(spec, "online", product), KEY, SETTINGS)
            assert pod_spec(job)["nodeSelector"] == {"nvidia.com/gpu.product": product}
            command = pod_spec(job)["containers"][0]["command"]
            assert command[command.index("--gpu-product") + 1] == product
            assert job["metadata"]["labels"][names.LABEL_GPU_PRODUCT] == product

    def test_each_deployment_is_pinned_to_its_product_and_the_service_selects_them_all(self):
        spec = self.spec()
        service = serving.build_service(OWNER, spec, spec.profile("online"))
        deployments = [
            serving.build_deployment(OWNER, spec, target(spec, "online", p), artifact(gpuProduct=p), SETTINGS)
            for p in self.PRODUCTS
        ]
        assert [d["metadata"]["name"] for d in deployments] == [
            "resnet-online-h100-80gb-hbm3",
            "resnet-online-l4",
            "resnet-online-a100-sxm4-80gb",
        ]
        selectors = [d["spec"]["selector"]["matchLabels"] for d in deployments]
        for deployment, product, selector in zip(deployments, self.PRODUCTS, selectors, strict=True):
            assert pod_spec(deployment)["nodeSelector"] == {"nvidia.com/gpu.product": product}
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items() and selector[names.LABEL_GPU_PRODUCT] == product
            # The Service reaches every product's pods; no two Deployments select the same pods.
            assert service["spec"]["selector"].items() <= labels.items()
            assert sum(other.items() <= labels.items() for other in selectors) == 1
        assert service["metadata"]["name"] == "resnet-online"

    def test_per_product_replicas_override_the_profiles(self):
        spec = self.spec(products=[{"name": "NVIDIA-L4", "replicas": 5}, {"name": GPU, "replicas": 0}])
        by_product = {
            p: serving.build_deployment(OWNER, spec, target(spec, "online", p), artifact(gpuProduct=p), SETTINGS)
            for p in self.PRODUCTS
        }
        assert {p: d["spec"]["replicas"] for p, d in by_product.items()} == {
            "NVIDIA-L4": 5,
            GPU: 0,
            "NVIDIA-A100-SXM4-80GB": 2,  # the profile's own
        }
        assert serving.wants_disruption_budget(spec, target(spec, "online", "NVIDIA-L4"))
        assert not serving.wants_disruption_budget(spec, target(spec, "online", GPU))
        pdb = serving.build_disruption_budget(OWNER, target(spec, "online", "NVIDIA-L4"))
        assert pdb["metadata"]["name"] == "resnet-online-l4"
        assert pdb["spec"]["selector"]["matchLabels"][names.LABEL_GPU_PRODUCT] == "NVIDIA-L4"

    def test_one_product_named_alone_keeps_the_plain_names(self):
        spec = make_spec()
        deployment = serving.build_deployment(OWNER, spec, target(spec), artifact(), SETTINGS)
        assert deployment["metadata"]["name"] == "resnet-online"
        assert names.LABEL_GPU_PRODUCT not in deployment["spec"]["selector"]["matchLabels"]

    def test_the_product_is_part_of_the_artifact_key(self):
        from trtaoti.artifact import artifact_key

        spec = self.spec()
        keys = {artifact_key(spec, spec.profile("online"), compiler_image="c", gpu_product=p) for p in self.PRODUCTS}
        assert len(keys) == 3
        single = make_spec()  # compile.gpu.product: GPU
        assert artifact_key(single, single.profile("online"), compiler_image="c") in keys


class TestQueueDepthAutoscaling:
    """serving.autoscaling.metric queueDepth: an HPA v2 Pods metric on the server's gauge."""

    def test_the_hpa_targets_the_average_queue_depth_per_pod(self):
        spec = make_spec(serving={"autoscaling": {"maxReplicas": 8, "metric": "queueDepth", "targetQueueDepth": 6}})
        hpa = serving.build_autoscaler(OWNER, spec, target(spec))
        assert hpa["spec"]["metrics"] == [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "nv_inference_pending_request_count"},
                    "target": {"type": "AverageValue", "averageValue": "6"},
                },
            }
        ]
        # No CPU request is invented: nothing divides by it.
        deployment = serving.build_deployment(OWNER, spec, target(spec), artifact(), SETTINGS)
        assert "cpu" not in pod_spec(deployment)["containers"][0]["resources"].get("requests", {})

    def test_the_default_target_and_the_cpu_metric(self):
        default = make_spec(serving={"autoscaling": {"maxReplicas": 8, "metric": "queueDepth"}})
        pods = serving.build_autoscaler(OWNER, default, target(default))["spec"]["metrics"][0]["pods"]
        assert pods["target"]["averageValue"] == str(serving.DEFAULT_TARGET_QUEUE_DEPTH)
        cpu = make_spec(serving={"autoscaling": {"maxReplicas": 8}})
        assert serving.build_autoscaler(OWNER, cpu, target(cpu))["spec"]["metrics"][0]["type"] == "Resource"

    def test_the_hpa_validates_against_the_pinned_kubernetes_schema(self):
        from support.binaries import versions
        from support.tools import import_tool

        kubernetes_validate = import_tool("kubernetes_validate", "kubernetes-validate is in the test extra")
        spec = make_spec(serving={"autoscaling": {"maxReplicas": 8, "metric": "queueDepth"}})
        hpa = serving.build_autoscaler(OWNER, spec, target(spec))
        kubernetes_validate.validate(hpa, versions()["KUBERNETES_VERSION"].lstrip("v"), strict=True)
