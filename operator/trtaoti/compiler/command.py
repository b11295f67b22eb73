"""`trtaoti compile --spec MODEL.yaml --profile NAME --output URI`: the compile Job.

Exit status: 0 compiled and stored (or already stored: "cache hit"), 1 failed and
worth retrying, 2 the input can never compile (bad spec, model/spec mismatch,
validation mismatch). A one-line JSON summary goes to /dev/termination-log, where
Kubernetes (and the operator) read why the Job ended or what it stored:
  {"ok": false, "exitCode": 2, "error": "compile failed: ..."}
  {"ok": true, "exitCode": 0, "cacheHit": false, "key": ..., "uri": ..., "sha256": ..., "bytes": ..., "backend": ...}
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic
import yaml

from trtaoti.api.models import TrtAotiModel
from trtaoti.compiler.errors import EXIT_FAILED, CompileError, InvalidInput
from trtaoti.compiler.progress import write_termination_message

if TYPE_CHECKING:  # the pipeline imports torch: loaded only when a compile runs
    from trtaoti.compiler.pipeline import CompileOutcome


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, type=Path, help="TrtAotiModel manifest (YAML)")
    parser.add_argument("--profile", required=True, help="batch profile to compile")
    parser.add_argument("--output", required=True, help="artifact store URI (s3://, gs://, az://, file:///)")
    parser.add_argument("--device", choices=["cuda", "cpu"], help="override spec.device")
    parser.add_argument("--backend", choices=["tensorrt", "inductor"], help="override spec.backend")
    parser.add_argument(
        "--gpu-product",
        help="GPU product to compile for (nvidia.com/gpu.product): one of spec.compile.gpu.products "
        "(required when it lists several; the compile Job passes it)",
    )
    parser.add_argument("--workdir", type=Path, help="keep intermediate files here (default: a temporary directory)")
    parser.add_argument(
        "--compiler-image",
        default=os.environ.get("TRTAOTI_COMPILER_IMAGE", "local"),
        help="image this compiler runs in; part of the artifact key (default: $TRTAOTI_COMPILER_IMAGE or 'local')",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("TRTAOTI_ARTIFACT_KEY") or None,
        help="artifact key computed by the operator (default: $TRTAOTI_ARTIFACT_KEY, else computed here)",
    )
    parser.add_argument("--validate-timeout", type=float, default=1200, help="seconds the validation worker may run")


def run(args: argparse.Namespace) -> int:
    try:
        outcome = _compile(args)
    except CompileError as exc:
        message = f"compile failed: {exc}"
        print(message, file=sys.stderr, flush=True)
        write_termination_message({"ok": False, "exitCode": exc.exit_code, "error": message})
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the Job must end with a message, whatever broke
        traceback.print_exc()
        message = f"compile failed (internal error): {type(exc).__name__}: {exc}"
        write_termination_message({"ok": False, "exitCode": EXIT_FAILED, "error": message})
        return EXIT_FAILED
    manifest = outcome.manifest
    print(
        f"{'cache hit' if outcome.cache_hit else 'compiled'}: {outcome.model_uri} sha256 {manifest.sha256}", flush=True
    )
    write_termination_message({
        "ok": True, "exitCode": 0, "cacheHit": outcome.cache_hit, "key": outcome.key, "uri": outcome.model_uri,
        "sha256": manifest.sha256, "bytes": manifest.bytes, "backend": manifest.backend,
    })  # fmt: skip
    return 0


def _compile(args: argparse.Namespace) -> CompileOutcome:
    model = load_spec(args.spec)
    from trtaoti.compiler.pipeline import CompileRequest, compile_profile

    return compile_profile(
        CompileRequest(
            model=model,
            profile=args.profile,
            output_uri=args.output,
            compiler_image=args.compiler_image,
            device=args.device,
            backend=args.backend,
            gpu_product=args.gpu_product,
            key=args.key,
            spec_dir=args.spec.resolve().parent,
            workdir=args.workdir,
            validate_timeout=args.validate_timeout,
        )
    )


def load_spec(path: Path) -> TrtAotiModel:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read --spec {path}: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind", "TrtAotiModel") != "TrtAotiModel":
        raise InvalidInput(f"--spec {path} is not a TrtAotiModel manifest")
    try:
        return TrtAotiModel.model_validate(document)
    except pydantic.ValidationError as exc:
        raise InvalidInput(f"--spec {path} is not a valid TrtAotiModel: {exc}") from exc
