"""One profile from spec to stored artifact, in order:

    key -> cache check -> load model -> eager references -> torch.export
        -> backend compile -> validate (separate process) -> upload model -> manifest

The manifest is written last: its presence is the commit marker, so a Job killed
half-way leaves no artifact the operator would serve. An existing manifest under
the same key makes the whole compile a no-op.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils._pytree import tree_flatten

from trtaoti.api.models import TrtAotiModel, TrtAotiModelSpec
from trtaoti.artifact import (
    LOCAL_PACKAGE_FILE,
    InvalidManifest,
    Manifest,
    artifact_key,
    commit_manifest,
    key_document,
    package_relpath,
    read_manifest,
)
from trtaoti.compiler.dtypes import describe_tensors
from trtaoti.compiler.errors import CompileFailed, InvalidInput
from trtaoti.compiler.export import (
    SignatureAdapter,
    eval_mode,
    export_model,
    model_dtype,
    output_names_from,
    prepare_module,
)
from trtaoti.compiler.inductor import compile_inductor
from trtaoti.compiler.metadata import build_manifest, package_metadata, versions
from trtaoti.compiler.plan import CompilePlan
from trtaoti.compiler.progress import step
from trtaoti.compiler.rewrites import rewrite_for_export
from trtaoti.compiler.samples import SampleInputs
from trtaoti.compiler.source import LoadedModel, check_examples, load_model
from trtaoti.compiler.timing_cache import TimingCache
from trtaoti.compiler.validate import DEFAULT_TIMEOUT_SECONDS, ValidationCase, validate_package
from trtaoti.storage import (
    ObjectNotFound,
    StorageError,
    Store,
    file_sha256,
    open_store,
    split_object_uri,
)

T = TypeVar("T")


@dataclass
class CompileRequest:
    model: TrtAotiModel
    profile: str
    output_uri: str
    compiler_image: str = "local"
    device: str | None = None  # overrides spec.device
    backend: str | None = None  # overrides spec.backend
    gpu_product: str | None = None  # which of spec.compile.gpu.products (or the local GPU's, for trtaoti run)
    key: str | None = None  # the operator's key (it names the Job and is awaited); computed when None
    spec_dir: Path = field(default_factory=Path.cwd)  # relative pythonPath entries start here
    workdir: Path | None = None  # kept when given; a temporary one is removed
    env: Mapping[str, str] | None = None  # storage credentials; os.environ when None
    validate_timeout: float = DEFAULT_TIMEOUT_SECONDS
    torchtrt: Any | None = None  # torch_tensorrt, or a stand-in in tests


@dataclass
class CompileOutcome:
    key: str
    model_uri: str
    manifest: Manifest
    cache_hit: bool


def effective_spec(spec: TrtAotiModelSpec, device: str | None, backend: str | None) -> TrtAotiModelSpec:
    update = {name: value for name, value in (("device", device), ("backend", backend)) if value}
    spec = spec.model_copy(update=update)
    if spec.backend == "tensorrt" and spec.device != "cuda":
        raise InvalidInput("backend tensorrt requires device cuda (use backend inductor for CPU)")
    return spec


def target_product(spec: TrtAotiModelSpec, requested: str | None) -> str | None:
    """The GPU product this compile is for (None on CPU)."""
    if spec.device != "cuda":
        return None
    products = spec.compile.gpu.product_list()
    if requested is not None:
        if products and requested not in products:
            raise InvalidInput(f"--gpu-product {requested} is not one of the spec's GPU products {products}")
        return requested
    if len(products) > 1:
        raise InvalidInput(f"the spec lists GPU products {products}: say which with --gpu-product")
    return products[0] if products else None


def compile_profile(request: CompileRequest) -> CompileOutcome:
    spec = effective_spec(request.model.spec, request.device, request.backend)
    try:
        profile = spec.profile(request.profile)
    except KeyError as exc:
        raise InvalidInput(str(exc.args[0])) from None
    product = target_product(spec, request.gpu_product)
    store = _open_output(request)
    source_etag = _source_etag(spec, request.env)
    image = request.compiler_image
    document = key_document(spec, profile, compiler_image=image, source_etag=source_etag, gpu_product=product)
    key = request.key or artifact_key(spec, profile, compiler_image=image, source_etag=source_etag, gpu_product=product)

    existing = _storage_call(lambda: _existing_manifest(store, key))
    if existing is not None:
        step(f"cache hit: {existing.uri} (sha256 {existing.sha256}) is already compiled; nothing to do")
        return CompileOutcome(key, existing.uri, existing, cache_hit=True)

    plan = CompilePlan.from_spec(
        request.model.name, spec, profile, key=key, compiler_image=request.compiler_image, gpu_product=product
    )
    if plan.device == "cuda" and not torch.cuda.is_available():
        raise CompileFailed("device cuda requested but no CUDA device is visible to torch")
    step(
        f"compiling {plan.model_name} profile {profile.name} batch {plan.describe_range()} "
        f"backend={plan.backend} precision={plan.precision} device={plan.device} key={key}"
    )
    temporary = request.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="trtaoti-compile-")) if request.workdir is None else request.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        manifest = _compile(request, plan, store, workdir, document)
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return CompileOutcome(key, manifest.uri, manifest, cache_hit=False)


def _existing_manifest(store: Store, key: str) -> Manifest | None:
    try:
        return read_manifest(store, key)
    except InvalidManifest as exc:
        # Committed manifests are never rewritten (create-only), so compiling again
        # could not replace it: the user has to remove the damaged artifact.
        raise CompileFailed(f"{exc}; delete {store.uri_of(key)}/ to compile it again") from None


def _compile(
    request: CompileRequest, plan: CompilePlan, store: Store, workdir: Path, document: dict[str, Any]
) -> Manifest:
    spec = request.model.spec
    loaded = load_model(spec.model, spec_dir=request.spec_dir, workdir=workdir, env=request.env)
    step(f"loaded {loaded.description}")
    check_examples(loaded, plan.inputs)
    samples = SampleInputs(plan.inputs, loaded.example_inputs)

    cases, raw_output = _eager_references(loaded, plan, samples)
    names = output_names_from(raw_output, len(cases[0].expected), loaded.output_names)
    step(f"eager references at batch {', '.join(str(c.batch) for c in cases)}; outputs {names}")

    adapter = prepare_module(loaded.module, plan)
    rewrites = rewrite_for_export(adapter, plan.backend)
    if rewrites:
        step("rewritten for export: " + ", ".join(f"{name} x{count}" for name, count in rewrites.items()))
    exported = export_model(adapter, plan, samples.make(plan.trace_batch, plan.torch_device), names)
    step(
        f"exported with batch {plan.describe_range()}; "
        f"outputs {[(o.name, o.datatype, o.shape) for o in exported.outputs]}"
    )

    package = workdir / LOCAL_PACKAGE_FILE
    requires_torchtrt = plan.backend == "tensorrt"
    torchtrt = None
    if requires_torchtrt:
        from trtaoti.compiler.tensorrt import compile_tensorrt, import_torch_tensorrt

        torchtrt = request.torchtrt if request.torchtrt is not None else import_torch_tensorrt()
    found_versions = versions(plan, torchtrt)
    metadata = package_metadata(
        plan, exported.outputs, found_versions, requires_torchtrt_runtime=requires_torchtrt, rewrites=rewrites
    )
    if requires_torchtrt:
        timing = _timing_cache(store, plan, found_versions)
        timing_file = workdir / "timing.cache"
        fetched = timing.fetch(timing_file) if timing else None
        compile_tensorrt(
            exported, plan, package, metadata, samples.int_ranges, torchtrt=torchtrt,
            timing_cache=timing_file if timing else None,
        )  # fmt: skip
        if timing:
            timing.publish(timing_file, fetched)
    else:
        step("AOTInductor: compiling the package")
        compile_inductor(exported.program, package, metadata)
    step(f"package written: {package.stat().st_size} bytes")

    report = validate_package(
        package,
        plan,
        cases,
        output_names=names,
        workdir=workdir,
        requires_torchtrt_runtime=requires_torchtrt,
        timeout_seconds=request.validate_timeout,
    )
    step(
        f"validated at batch {report.batches}: max abs error {report.max_abs_error:.3g}; "
        f"latency {report.latency_ms} ms; peak host memory {report.peak_host_bytes / 2**20:.0f} MiB"
    )

    # Named by content, so a concurrent writer of the same key can never overwrite the
    # bytes our manifest describes (trtaoti/artifact/layout.py).
    relpath = package_relpath(plan.key, file_sha256(package))
    upload = _storage_call(lambda: store.upload_file(package, relpath))
    model_uri = store.uri_of(relpath)
    step(f"uploaded {model_uri} ({upload.size} bytes, sha256 {upload.sha256})")
    manifest = build_manifest(
        plan,
        model_uri=model_uri,
        upload=upload,
        outputs=exported.outputs,
        found_versions=found_versions,
        report=report,
        gpu=_gpu_facts(plan),
        key_document=document,
    )
    committed = _storage_call(lambda: commit_manifest(store, manifest))
    if committed is not manifest:
        step(f"another compile committed {store.uri_of(plan.key)}/ first; using its {committed.uri}")
        if committed.uri != model_uri:
            _storage_call(lambda: store.delete(relpath))
        return committed
    step(f"committed {store.uri_of(plan.key)}/manifest.json")
    return manifest


def _eager_references(
    loaded: LoadedModel, plan: CompilePlan, samples: SampleInputs
) -> tuple[list[ValidationCase], Any]:
    """Outputs of the model as given (its own precision) at the validation batches.

    Computed before the model is cast to the compile precision, so fp16/bf16 packages
    are judged against the original model.
    """
    module = eval_mode(loaded.module).to(plan.torch_device)
    original = model_dtype(module)
    casts = [
        original if original is not None and s.dtype.is_floating_point and s.dtype != original else None
        for s in plan.inputs
    ]
    reference = SignatureAdapter(module, casts)
    cases, first_raw = [], None
    for batch in plan.validation_batches:
        inputs = samples.make(batch)
        try:
            with torch.no_grad():
                raw = reference(*[t.to(plan.torch_device) for t in inputs])
        except Exception as exc:
            shapes = describe_tensors([s.name for s in plan.inputs], list(inputs))
            raise InvalidInput(
                f"the model fails at batch {batch} of batch range {plan.describe_range()} "
                f"with inputs {shapes}: {type(exc).__name__}: {exc}"
            ) from exc
        first_raw = raw if first_raw is None else first_raw
        flat = [t.detach().to("cpu") for t in tree_flatten(raw)[0]]
        cases.append(ValidationCase(batch, inputs, flat))
    return cases, first_raw


def _open_output(request: CompileRequest) -> Store:
    try:
        return open_store(request.output_uri, request.env)
    except ValueError as exc:
        raise InvalidInput(f"--output: {exc}") from exc
    except StorageError as exc:
        raise CompileFailed(str(exc)) from exc


def _source_etag(spec: TrtAotiModelSpec, env: Mapping[str, str] | None) -> str | None:
    """The exported program's ETag, which identifies it in the key when no sha256 is pinned."""
    uri = spec.model.exported_program
    if not uri or spec.model.sha256:
        return None
    try:
        directory, name = split_object_uri(uri)
        return open_store(directory, env).head(name).etag
    except ObjectNotFound as exc:
        raise InvalidInput(f"model.exportedProgram: {exc}") from exc
    except StorageError as exc:
        raise CompileFailed(f"model.exportedProgram: {exc}") from exc


def _storage_call(call: Callable[[], T]) -> T:
    """`call` (a thunk over the store), its storage failure a compile failure."""
    try:
        return call()
    except StorageError as exc:
        raise CompileFailed(str(exc)) from exc


def _timing_cache(store: Store, plan: CompilePlan, found_versions: dict[str, str]) -> TimingCache | None:
    """The shared timing cache of this GPU product and TensorRT release, when both are known."""
    version = found_versions.get("tensorrt")
    if not plan.gpu_product or not version:
        step("timing cache off: the GPU product or the TensorRT version is unknown")
        return None
    return TimingCache(store, plan.gpu_product, version)


def _gpu_facts(plan: CompilePlan) -> dict[str, str]:
    if plan.device != "cuda":
        return {}
    major, minor = torch.cuda.get_device_capability()
    return {"computeCapability": f"{major}.{minor}", "gpuName": torch.cuda.get_device_name()}
