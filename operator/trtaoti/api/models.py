"""Typed spec and status of the TrtAotiModel custom resource.

These models are the single source of truth: the CRD's OpenAPI schema (with its CEL
rules) is generated from them by `trtaoti.api.crd`, the operator parses custom
resources with them, and the compiler reads the same manifest. Field names are
camelCase on the wire (Kubernetes convention) and snake_case in Python.

Cross-field rules live next to the fields they constrain, as
`x-kubernetes-validations`, so the apiserver rejects a bad spec at `kubectl apply`
time instead of a GPU Job failing an hour later.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

GROUP = "trtaoti.dev"
VERSION = "v1alpha1"
KIND = "TrtAotiModel"
PLURAL = "trtaotimodels"
SINGULAR = "trtaotimodel"
SHORT_NAMES = ["tam"]
API_VERSION = f"{GROUP}/{VERSION}"

# Child names are "<cr>-<profile>" plus suffixes; keeping both short keeps every
# derived name a valid DNS label (63 characters).
MAX_MODEL_NAME_LENGTH = 40
MAX_PROFILE_NAME_LENGTH = 16
MAX_BATCH = 65536

# How many earlier artifact keys a status remembers for retentionPolicy Delete.
SUPERSEDED_KEYS_KEPT = 64
STORAGE_URI_PATTERN = r"^(s3|gs|az|file)://[^\s]+$"
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# A label value, as GPU Feature Discovery writes nvidia.com/gpu.product.
GPU_PRODUCT_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
MAX_GPU_PRODUCTS = 8
TENSOR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"


# `default: {}` on an optional object makes the apiserver fill in its fields' defaults
# too (it only defaults inside objects that exist); pydantic's default_factory is silent.
EMPTY_DEFAULT: dict[str, Any] = {"default": {}}


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    """One `x-kubernetes-validations` entry; field_path points the error at a child."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def list_map(*keys: str) -> dict[str, Any]:
    """Schema extras that make a list a Kubernetes list-map (unique keys, SSA-mergeable)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class ApiModel(BaseModel):
    """Base for every API object: camelCase aliases, unknown fields ignored.

    Unknown fields are ignored rather than forbidden so an older operator can read
    a newer CR; the apiserver already prunes fields the CRD does not declare.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in a Kubernetes manifest."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class DType(str, enum.Enum):
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"
    int64 = "int64"
    int32 = "int32"
    int16 = "int16"
    int8 = "int8"
    uint8 = "uint8"
    bool = "bool"


class Backend(str, enum.Enum):
    tensorrt = "tensorrt"
    inductor = "inductor"


class Precision(str, enum.Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Device(str, enum.Enum):
    cuda = "cuda"
    cpu = "cpu"


class RetentionPolicy(str, enum.Enum):
    retain = "Retain"
    delete = "Delete"


# --- spec -------------------------------------------------------------------------


class PythonSource(ApiModel):
    """A factory in the compiler image that builds the model and example inputs."""

    factory: str = Field(
        description=(
            'Import path "package.module:callable". The callable takes no arguments and '
            "returns (module, example_inputs) where example_inputs is a tuple of tensors "
            "in the order of spec.inputs."
        ),
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        max_length=256,
    )
    python_path: list[str] = Field(
        default_factory=list,
        description="Extra directories prepended to sys.path before importing the factory.",
        max_length=16,
    )


class ModelSource(ApiModel):
    """Where the model comes from: exactly one of exportedProgram or python."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.exportedProgram) != has(self.python)",
                    "exactly one of model.exportedProgram or model.python must be set",
                ),
                cel(
                    "!has(self.sha256) || has(self.exportedProgram)",
                    "model.sha256 pins an exportedProgram; a python factory is pinned by the compiler image",
                    ".sha256",
                ),
                cel(
                    "!has(self.exportedProgram) || !self.exportedProgram.startsWith('file://')",
                    "a file:// model works only with trtaoti run or trtaoti compile on one machine; "
                    "a compile Job reads it from s3://, gs:// or az://",
                    ".exportedProgram",
                ),
            ]
        }
    )

    exported_program: str | None = Field(
        default=None,
        description=(
            "URI of a torch.export.save() file: s3://, gs:// or az:// "
            "(file:// only for trtaoti run/compile on one machine)."
        ),
        pattern=STORAGE_URI_PATTERN,
        max_length=1024,
    )
    python: PythonSource | None = Field(default=None, description="A Python factory available in the compiler image.")
    sha256: str | None = Field(
        default=None,
        description=(
            "Expected sha256 of the exported program. Pins the model's identity in the "
            "artifact key and is verified after download; when empty the object's ETag is used."
        ),
        pattern=r"^[0-9a-f]{64}$",
    )


class InputSpec(ApiModel):
    """One model input, in the order the model takes it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.shape[0] == -1 && self.shape.filter(d, d == -1).size() == 1",
                    "shape must have exactly one batch dimension (-1), and it must come first",
                    ".shape",
                ),
            ]
        }
    )

    name: str = Field(
        description="Tensor name used by clients (KServe V2 input name).",
        pattern=TENSOR_NAME_PATTERN,
        max_length=64,
    )
    dtype: DType = Field(description="Element type of the tensor.")
    shape: list[Annotated[int, Field(ge=-1, le=1 << 20)]] = Field(
        description="Dimensions; the first is -1 (the batch dimension), the others fixed positive sizes.",
        min_length=1,
        max_length=8,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.all(d, d == -1 || d > 0)", "dimensions must be -1 (batch) or positive")
            ]
        },
    )


class TimeoutAction(str, enum.Enum):
    REJECT = "REJECT"
    DELAY = "DELAY"


MAX_PRIORITY_LEVELS = 100


class QueuePolicy(ApiModel):
    """Triton's queue policy (dynamic_batching priority_levels, default_priority_level,
    default_queue_policy), per profile. Requests choose a level with the request
    parameter `priority` and may carry their own `timeout` (microseconds)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # has(): the apiserver also checks this rule against the field's own
                # default, `{}`, where neither key is set (the CRD was refused without it).
                cel(
                    "(has(self.defaultPriorityLevel) ? self.defaultPriorityLevel : 1)"
                    " <= (has(self.priorityLevels) ? self.priorityLevels : 1)",
                    "defaultPriorityLevel must be <= priorityLevels",
                    ".defaultPriorityLevel",
                ),
            ]
        }
    )

    priority_levels: int = Field(
        default=1,
        ge=1,
        le=MAX_PRIORITY_LEVELS,
        description=(
            "Priority levels 1..priorityLevels; level 1 is served first. A request above the "
            "levels gets 400. 1: one FIFO queue (Triton's priority_levels 0)."
        ),
    )
    default_priority_level: int = Field(
        default=1,
        ge=1,
        le=MAX_PRIORITY_LEVELS,
        description="The level of a request without a priority (or with priority 0).",
    )
    default_timeout_microseconds: int | None = Field(
        default=None,
        ge=0,
        le=3_600_000_000,
        description=(
            "A request still queued after this long gets the timeoutAction; 0: never. "
            "Unset: serving.requestTimeoutMilliseconds."
        ),
    )
    timeout_action: TimeoutAction = Field(
        default=TimeoutAction.REJECT,
        description=(
            "REJECT: answer 503 'Request timeout expired' at the deadline. DELAY: serve the "
            "request after every unexpired request of its priority level."
        ),
    )
    allow_timeout_override: bool = Field(
        default=False,
        description="Let a request's own timeout parameter shorten the default timeout.",
    )

    @model_validator(mode="after")
    def _default_level_within_levels(self) -> QueuePolicy:
        # The CEL rule's twin, for specs that never meet an apiserver (trtaoti run).
        if self.default_priority_level > self.priority_levels:
            raise ValueError("defaultPriorityLevel must be <= priorityLevels")
        return self


class BatchProfile(ApiModel):
    """A batch range compiled into one package and served by one Deployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.min <= self.opt", "min must be <= opt", ".min"),
                cel("self.opt <= self.max", "opt must be <= max", ".opt"),
                cel(
                    "!has(self.cudaGraphMaxBatch) || self.cudaGraphMaxBatch <= self.max",
                    "cudaGraphMaxBatch must be <= max",
                    ".cudaGraphMaxBatch",
                ),
            ]
        }
    )

    name: str = Field(
        description="Profile name; becomes part of the Deployment name.",
        pattern=DNS_LABEL_PATTERN,
        max_length=MAX_PROFILE_NAME_LENGTH,
    )
    min: int = Field(ge=1, le=MAX_BATCH, description="Smallest batch the package is compiled for.")
    opt: int = Field(ge=1, le=MAX_BATCH, description="Batch size TensorRT optimizes for.")
    max: int = Field(ge=1, le=MAX_BATCH, description="Largest batch the package accepts; the batcher never exceeds it.")
    replicas: int = Field(default=1, ge=0, le=1000, description="Serving replicas (the minimum when autoscaling).")
    max_queue_delay_microseconds: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="How long the batcher may hold a request to form a larger batch.",
    )
    max_queue_size: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="Requests queued per priority level before the server answers 503 'Exceeds maximum queue size'.",
    )
    queue_policy: QueuePolicy = Field(
        default_factory=QueuePolicy,
        description="Priority levels and queue timeouts of this profile's server (Triton's queue policy).",
        json_schema_extra=EMPTY_DEFAULT,
    )

    cuda_graph_max_batch: int = Field(
        default=0,
        ge=0,
        le=MAX_BATCH,
        description=(
            "On CUDA: the server captures CUDA graphs at start for batches of up to this many rows "
            "and replays them instead of launching every kernel (a launch-bound model's lone request "
            "takes about half as long). Costs a second copy of the weights in GPU memory and about "
            "a second at start. 0: off."
        ),
    )

    @model_validator(mode="after")
    def _graphs_within_range(self) -> BatchProfile:
        # The CEL rule's twin, for specs that never meet an apiserver (trtaoti run).
        if self.cuda_graph_max_batch > self.max:
            raise ValueError("cudaGraphMaxBatch must be <= max")
        return self

    def queue_timeout_microseconds(self, serving: ServingSpec) -> int:
        """The profile's own default timeout, else the model-wide one."""
        own = self.queue_policy.default_timeout_microseconds
        return own if own is not None else serving.request_timeout_milliseconds * 1000


GpuProduct = Annotated[str, Field(max_length=63, pattern=GPU_PRODUCT_PATTERN)]


class GpuSelector(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.product) && has(self.products))",
                    "set compile.gpu.product (one GPU) or compile.gpu.products (a fleet), not both",
                    ".products",
                ),
            ]
        }
    )

    product: GpuProduct | None = Field(
        default=None,
        description=(
            "GPU product (node label nvidia.com/gpu.product). TensorRT engines and CUDA kernels "
            "are tied to it: compile Jobs and serving pods both land on it."
        ),
    )
    products: list[GpuProduct] | None = Field(
        default=None,
        description=(
            "A fleet of GPU products: every batch profile is compiled once per product (a Job "
            "on a node of that product) and served by one Deployment per product, each pinned "
            "to its product and running the package built there; one Service per profile "
            "selects them all. Deployments are then named <model>-<profile>-<product>."
        ),
        min_length=1,
        max_length=MAX_GPU_PRODUCTS,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    count: int = Field(default=1, ge=1, le=8, description="GPUs per compile pod and per serving pod.")

    def product_list(self) -> list[str]:
        """The products compiled for: the fleet, or the one product."""
        return list(self.products) if self.products else [self.product] if self.product else []


# Bounded so the apiserver can afford the CEL rules over these maps.
Quantity = Annotated[str, Field(max_length=64)] | int

_QUANTITIES_RULE = cel(
    "self.all(k, isQuantity(string(self[k])))",
    "every value must be a Kubernetes quantity (e.g. 500m, 2, 4Gi)",
)


class ResourceRequirements(ApiModel):
    """Container resources, as in core/v1 (quantities as strings or integers)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || "
                    "!isQuantity(string(self.requests[k])) || !isQuantity(string(self.limits[k])) || "
                    "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",
                    "every request must be <= its limit",
                    ".requests",
                ),
            ]
        }
    )

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Minimum resources.",
        max_length=16,
        json_schema_extra={"x-kubernetes-validations": [_QUANTITIES_RULE]},
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Maximum resources.",
        max_length=16,
        json_schema_extra={"x-kubernetes-validations": [_QUANTITIES_RULE]},
    )


class CompileSpec(ApiModel):
    """How the compile Job runs and what the compiler is told."""

    image: str | None = Field(
        default=None, description="Compiler image; defaults to the operator's configured image.", max_length=512
    )
    gpu: GpuSelector = Field(
        default_factory=GpuSelector,
        description="GPU the compile Job (and serving) runs on.",
        json_schema_extra=EMPTY_DEFAULT,
    )
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Resources of the compile container.",
        json_schema_extra=EMPTY_DEFAULT,
    )
    timeout_seconds: int = Field(default=3600, ge=60, le=86400, description="activeDeadlineSeconds of the compile Job.")
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Retries of the compile Job.")
    min_block_size: int = Field(
        default=5, ge=1, le=1000, description="TensorRT: smallest subgraph converted to an engine."
    )
    optimization_level: int = Field(default=3, ge=0, le=5, description="TensorRT builder optimization level.")
    workspace_bytes: int | None = Field(
        default=None, ge=0, description="TensorRT builder workspace limit in bytes (unset: TensorRT's default)."
    )
    rtol: float | None = Field(
        default=None, gt=0, le=1, description="Validation relative tolerance (default set by precision)."
    )
    atol: float | None = Field(
        default=None, gt=0, le=10, description="Validation absolute tolerance (default set by precision)."
    )


class StorageSpec(ApiModel):
    # The operator, the compile Job and every serving pod reach the store from different
    # machines; a local path would compile, then be found by nobody.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.uri.startsWith('file://')",
                    "file:// storage works only with trtaoti run or trtaoti compile on one machine; "
                    "in a cluster the operator, compile Jobs and serving pods share s3://, gs:// or az://",
                    ".uri",
                ),
            ]
        }
    )

    uri: str = Field(
        description=(
            "Artifact store prefix: s3://bucket/prefix, gs:// or az:// "
            "(file:// only for trtaoti run/compile on one machine)."
        ),
        pattern=STORAGE_URI_PATTERN,
        max_length=1024,
    )
    secret_name: str | None = Field(
        default=None,
        description=(
            "Secret in the CR's namespace whose keys become environment variables of the compile "
            "Job and the fetch init container (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
            "AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_* ...)."
        ),
        pattern=DNS_LABEL_PATTERN.replace("[a-z]", "[a-z0-9]", 1),
        max_length=253,
    )
    retention_policy: RetentionPolicy = Field(
        default=RetentionPolicy.retain,
        description="What happens to artifacts when the TrtAotiModel is deleted.",
    )


class AutoscalingMetric(str, enum.Enum):
    cpu = "cpu"
    queue_depth = "queueDepth"


# trtaoti-server's gauge of requests waiting for a batch (Triton's name for it).
QUEUE_DEPTH_METRIC = "nv_inference_pending_request_count"


class AutoscalingSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.targetQueueDepth) || self.metric == 'queueDepth'",
                    "targetQueueDepth applies to metric queueDepth",
                    ".targetQueueDepth",
                ),
            ]
        }
    )

    max_replicas: int = Field(ge=1, le=1000, description="Upper bound for the HorizontalPodAutoscaler.")
    metric: AutoscalingMetric = Field(
        default=AutoscalingMetric.cpu,
        description=(
            "What the HPA scales on. cpu: CPU utilization (a CPU request of 1 is set). queueDepth: "
            f"the average of trtaoti-server's {QUEUE_DEPTH_METRIC} (requests waiting for a batch) per "
            "pod, an HPA Pods metric served by a custom-metrics adapter such as prometheus-adapter "
            "(docs/install.md has the rule); what a GPU-bound server should scale on."
        ),
    )
    target_cpu_utilization_percentage: int = Field(default=80, ge=1, le=100, description="HPA CPU utilization target.")
    target_queue_depth: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="metric queueDepth: requests waiting per pod the HPA holds the average at (default 4).",
    )


class ProductServing(ApiModel):
    """Serving settings of one GPU product of a fleet (compile.gpu.products)."""

    name: GpuProduct = Field(description="A product listed in compile.gpu.products.")
    replicas: int = Field(
        ge=0,
        le=1000,
        description=(
            "Replicas of every profile on this product, instead of the profile's own (the "
            "minimum when autoscaling). 0 compiles for the product but serves nothing there."
        ),
    )


class CanaryPromotion(str, enum.Enum):
    manual = "Manual"
    after_healthy_seconds = "AfterHealthySeconds"


DEFAULT_CANARY_HEALTHY_SECONDS = 300


class CanarySpec(ApiModel):
    """Serve a new artifact beside the previous one until it is promoted."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.healthySeconds) || (has(self.promotion) && self.promotion == 'AfterHealthySeconds')",
                    "healthySeconds applies to promotion AfterHealthySeconds",
                    ".healthySeconds",
                ),
            ]
        }
    )

    percent: int = Field(
        ge=1,
        le=100,
        description=(
            "Share of a profile's replicas (rounded up, at least one) that serve a new artifact while the "
            "previous one keeps the rest, behind the same Service. 100 promotes: every replica serves the "
            "newest artifact (a plain rolling update)."
        ),
    )
    promotion: CanaryPromotion = Field(
        default=CanaryPromotion.manual,
        description=(
            "Manual: the canary stays open until a spec edit sets percent to 100 (or removes canary). "
            "AfterHealthySeconds: promoted once the canary Deployment has been Available for healthySeconds."
        ),
    )
    healthy_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description=(
            "promotion AfterHealthySeconds: seconds the canary is Available before it is promoted "
            f"(default {DEFAULT_CANARY_HEALTHY_SECONDS})."
        ),
    )

    @property
    def opens(self) -> bool:
        """Whether a new artifact opens a canary at all (100 means: roll straight to it)."""
        return self.percent < 100

    @property
    def healthy_period(self) -> int:
        return DEFAULT_CANARY_HEALTHY_SECONDS if self.healthy_seconds is None else self.healthy_seconds


class ServingSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.grpcPort) || !has(self.port) || self.grpcPort != self.port",
                    "grpcPort must differ from port",
                    ".grpcPort",
                ),
            ]
        }
    )

    image: str | None = Field(
        default=None, description="trtaoti-server image; defaults to the operator's configured image.", max_length=512
    )
    port: int = Field(default=8000, ge=1024, le=65535, description="HTTP port of the KServe V2 endpoint.")
    grpc_port: int = Field(
        default=8001, ge=1024, le=65535,
        description="gRPC port of the KServe V2 endpoint (Triton's GRPCInferenceService; tritonclient.grpc).",
    )  # fmt: skip
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Resources of the server container; the memory request defaults to what the compile Job measured.",
        json_schema_extra=EMPTY_DEFAULT,
    )
    num_runners: int = Field(
        default=2, ge=1, le=64, description="Model runners per pod (batches executed concurrently)."
    )
    request_timeout_milliseconds: int = Field(
        default=30000,
        ge=1,
        le=3_600_000,
        description=(
            "A request still queued after this gets 503; a profile's "
            "queuePolicy.defaultTimeoutMicroseconds takes precedence."
        ),
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Create a HorizontalPodAutoscaler per serving Deployment when set."
    )
    canary: CanarySpec | None = Field(
        default=None,
        description=(
            "When a spec change produces a new artifact, serve it on a share of the replicas beside the "
            "previous artifact until promoted; an edit back to the previous inputs rolls back without a compile."
        ),
    )
    products: list[ProductServing] = Field(
        default_factory=list,
        description=(
            "Per-product replicas of a fleet (compile.gpu.products); products not listed use each profile's replicas."
        ),
        max_length=MAX_GPU_PRODUCTS,
        json_schema_extra=list_map("name"),
    )

    def replicas(self, profile: BatchProfile, product: str | None) -> int:
        for entry in self.products:
            if entry.name == product:
                return entry.replicas
        return profile.replicas


class TrtAotiModelSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.backend != 'tensorrt' || self.device == 'cuda'",
                    "backend tensorrt requires device cuda",
                    ".backend",
                ),
                cel(
                    "self.device == 'cpu' || (has(self.compile) && has(self.compile.gpu) && "
                    "(has(self.compile.gpu.product) || has(self.compile.gpu.products)))",
                    "device cuda requires compile.gpu.product (or compile.gpu.products): "
                    "compiled kernels are tied to the GPU",
                    ".compile",
                ),
                cel(
                    "!has(self.serving) || !has(self.serving.autoscaling) || "
                    "self.batchProfiles.all(p, p.replicas <= self.serving.autoscaling.maxReplicas)",
                    "serving.autoscaling.maxReplicas must be >= every profile's replicas",
                    ".serving",
                ),
                cel(
                    "!has(self.serving) || !has(self.serving.products) || (has(self.compile) && "
                    "has(self.compile.gpu) && has(self.compile.gpu.products) && "
                    "self.serving.products.all(p, p.name in self.compile.gpu.products))",
                    "every serving.products name must be listed in compile.gpu.products",
                    ".serving.products",
                ),
                cel(
                    "!has(self.serving) || !has(self.serving.products) || !has(self.serving.autoscaling) || "
                    "self.serving.products.all(p, p.replicas <= self.serving.autoscaling.maxReplicas)",
                    "serving.autoscaling.maxReplicas must be >= every product's replicas",
                    ".serving",
                ),
            ]
        }
    )

    model: ModelSource = Field(description="The model to compile.")
    inputs: list[InputSpec] = Field(
        description="Model inputs in call order.",
        min_length=1,
        max_length=32,
        json_schema_extra=list_map("name"),
    )
    batch_profiles: list[BatchProfile] = Field(
        description="Batch ranges; each becomes one compiled package and one Deployment.",
        min_length=1,
        max_length=8,
        json_schema_extra=list_map("name"),
    )
    backend: Backend = Field(
        default=Backend.tensorrt, description="tensorrt (TensorRT engines + AOTInductor) or inductor."
    )
    precision: Precision = Field(default=Precision.fp16, description="Compute precision.")
    device: Device = Field(default=Device.cuda, description="cuda, or cpu for inductor-only CPU serving.")
    compile: CompileSpec = Field(
        default_factory=CompileSpec, description="Compile Job settings.", json_schema_extra=EMPTY_DEFAULT
    )
    storage: StorageSpec = Field(description="Where compiled artifacts are stored.")
    serving: ServingSpec = Field(
        default_factory=ServingSpec, description="Serving Deployment settings.", json_schema_extra=EMPTY_DEFAULT
    )

    def gpu_products(self) -> list[str | None]:
        """What each profile is compiled for: the GPU products, or [None] on CPU."""
        if self.device != Device.cuda:
            return [None]
        return list(self.compile.gpu.product_list())

    @property
    def fleet(self) -> bool:
        """A list of products (even of one): serving objects are named per product."""
        return self.device == Device.cuda and bool(self.compile.gpu.products)

    def profile(self, name: str) -> BatchProfile:
        for profile in self.batch_profiles:
            if profile.name == name:
                return profile
        raise KeyError(f"no batch profile named {name!r} (have: {[p.name for p in self.batch_profiles]})")


# --- status -----------------------------------------------------------------------


class ConditionStatus(str, enum.Enum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(description="Condition type (Compiled, Ready).")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    observed_generation: int | None = Field(default=None, description="Generation the condition was set for.")
    last_transition_time: str = Field(description="RFC 3339 time of the last status change.")


class BatchRange(ApiModel):
    """The batch range a package was compiled for."""

    min: int = Field(description="Smallest batch.")
    opt: int = Field(description="Batch TensorRT optimized for.")
    max: int = Field(description="Largest batch.")


class Artifact(ApiModel):
    """A compiled package in object storage (from its manifest.json)."""

    uri: str = Field(description="URI of the package.")
    sha256: str = Field(description="sha256 of the package.")
    bytes: int = Field(description="Size of the package in bytes.")
    key: str = Field(description="Content address: hash of everything that changes the compiled bytes.")
    backend: str | None = Field(default=None, description="Backend actually used.")
    versions: dict[str, str] = Field(
        default_factory=dict, description="torch, torch_tensorrt, tensorrt, cuda versions."
    )
    device: str | None = Field(default=None, description="Device the package was compiled for.")
    batch: BatchRange = Field(description="Batch range compiled into the package.")
    gpu_product: str | None = Field(default=None, description="GPU the package was compiled on.")
    compute_capability: str | None = Field(default=None, description="CUDA compute capability, e.g. 9.0.")
    peak_memory_bytes: int | None = Field(default=None, description="Peak memory measured at the profile's max batch.")
    latency_ms: dict[str, float] = Field(default_factory=dict, description="Measured latency at opt and max batch.")


class ProfilePhase(str, enum.Enum):
    pending = "Pending"
    compiling = "Compiling"
    compiled = "Compiled"
    failed = "Failed"
    ready = "Ready"


class ProfileStatus(ApiModel):
    name: str = Field(description="Profile name.")
    gpu_product: str = Field(
        default="",
        description=(
            "GPU product this entry is compiled and served on "
            "(a fleet has one entry per profile and product; empty on CPU)."
        ),
    )
    phase: ProfilePhase = Field(description="Pending, Compiling, Compiled, Failed or Ready.")
    artifact_key: str | None = Field(default=None, description="Artifact key the current spec needs.")
    artifact: Artifact | None = Field(default=None, description="The compiled package served (or to be served).")
    compile_job: str | None = Field(default=None, description="Name of the compile Job, while one exists.")
    deployment: str | None = Field(default=None, description="Serving Deployment name.")
    service: str | None = Field(default=None, description="Serving Service name.")
    replicas: int | None = Field(default=None, description="Desired replicas.")
    ready_replicas: int | None = Field(default=None, description="Ready replicas.")
    endpoint: str | None = Field(default=None, description="In-cluster KServe V2 base URL.")
    message: str | None = Field(default=None, description="Last error or progress message.")
    canary: CanaryStatus | None = Field(
        default=None,
        description="While a canary is open: the new artifact and the split (artifact is then the stable one).",
    )


class CanaryStatus(ApiModel):
    """An open canary: a new artifact served beside the profile's stable one."""

    artifact: Artifact = Field(description="The new artifact the canary Deployment serves.")
    deployment: str = Field(description="Canary Deployment name.")
    percent: int = Field(description="Requested share of replicas on the new artifact.")
    split: str = Field(description='"stable/canary" replicas, e.g. "3/1" (Service connections spread by it).')
    replicas: int = Field(description="Desired canary replicas.")
    ready_replicas: int = Field(default=0, description="Ready canary replicas.")
    promotion: str = Field(description="Manual or AfterHealthySeconds.")
    healthy_since: str | None = Field(default=None, description="Since when the canary has been Available.")


class TrtAotiModelStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation the status reflects.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Compiled and Ready.", json_schema_extra=list_map("type")
    )
    profiles: list[ProfileStatus] = Field(
        default_factory=list,
        description="Per-profile state: one entry per profile and GPU product.",
        json_schema_extra=list_map("name", "gpuProduct"),
    )
    profiles_ready: str | None = Field(default=None, description='"ready/total" for kubectl get.')
    superseded_artifact_keys: list[str] = Field(
        default_factory=list,
        description=(
            "Artifact keys this model compiled or served before its current ones (latest last): "
            "with retentionPolicy Delete they are deleted with the model too."
        ),
        max_length=SUPERSEDED_KEYS_KEPT,
    )


class TrtAotiModel(ApiModel):
    """The whole custom resource, as the compiler reads it from a manifest file."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = Field(default=KIND)
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrtAotiModelSpec
    status: TrtAotiModelStatus | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "model"))
