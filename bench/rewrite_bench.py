"""What the compiler's module rewrites (trtaoti/compiler/rewrites.py) buy, per batch: the
same model as an AOTInductor package exported as written, with the attention rewrite
alone, and with every rewrite `trtaoti compile` applies, beside eager PyTorch, in
alternating rounds in one process.

    python3 bench/rewrite_bench.py --model encoder --out DIR            # GPU (cuda:0)
    python3 bench/rewrite_bench.py --model small-encoder --device cpu --batches 1,8 --out DIR
    python3 bench/rewrite_bench.py --compile-only ...   # compile beside other work, time later

Both packages are exported the way `trtaoti compile` exports (eval mode, the compute
precision, one dynamic batch dimension over the profile's range) and compiled with
`aoti_compile_and_package`, each in its own process, side by side. Every variant is
timed by bench/torch_baselines.py's `time_batch` (pageable host inputs to the device,
the forward pass, outputs to page-locked memory, one sync), so the columns differ only
in the graph that runs. Before timing, each package's outputs are compared with eager's
on the same inputs.

Writes DIR/rewrite-<model>.json and prints a table: p50 per variant (median of the
rounds' p50s), and eager / package ratios (above 1: the package is faster). Packages
already in --workdir are reused.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from bench.torch_baselines import bench_model, build, flat, host_inputs, time_batch  # noqa: E402

# The model as written; with the attention rewrite alone; with every rewrite `trtaoti compile` applies.
VARIANTS = ("as-written", "attention", "rewritten")


def export_and_compile(model: str, device: str, variant: str, package: Path) -> None:
    import torch

    from trtaoti.compiler.rewrites import rewrite_attention, rewrite_for_export

    module, example, _ = build(model, device)
    if variant == "attention":
        print("attention rewrites:", rewrite_attention(module), flush=True)
    elif variant == "rewritten":
        print("rewrites:", rewrite_for_export(module, "inductor"), flush=True)
    profile = bench_model(model).profile
    batch = torch.export.Dim("batch", min=profile["min"], max=profile["max"])
    inputs = tuple(x.to(device) for x in example)
    with torch.inference_mode(False), torch.no_grad():
        program = torch.export.export(module, inputs, dynamic_shapes=tuple({0: batch} for _ in inputs), strict=False)
    started = time.monotonic()
    torch._inductor.aoti_compile_and_package(program, package_path=str(package))
    print(f"{variant}: compiled in {time.monotonic() - started:.0f} s", flush=True)


def compile_both(model: str, device: str, workdir: Path) -> dict[str, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    packages = {v: workdir / f"{model}-{v}.pt2" for v in VARIANTS}
    jobs = {
        v: subprocess.Popen(
            [sys.executable, __file__, "--compile", v, "--model", model, "--device", device, "--package", str(p)],
            env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(workdir / f"inductor-{v}")},
        )
        for v, p in packages.items()
        if not p.exists()
    }
    for variant, job in jobs.items():
        if job.wait() != 0:
            raise SystemExit(f"compiling the {variant} package failed (exit {job.returncode})")
    return packages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="encoder")
    parser.add_argument("--device", default="cuda", help="cuda (cuda:0) or cpu")
    parser.add_argument("--batches", default="1,8,64,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5, help="timed seconds per variant, batch and round")
    parser.add_argument("--workdir", type=Path, default=REPO / ".gpu-work" / "rewrite")
    parser.add_argument("--out", type=Path, default=None, help="directory for rewrite-<model>.json")
    parser.add_argument("--compile-only", action="store_true", help="compile both packages (if missing) and stop")
    parser.add_argument("--compile", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--package", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = "cuda:0" if args.device == "cuda" else args.device
    if args.compile:
        export_and_compile(args.model, device, args.compile, args.package)
        return

    import torch

    packages = compile_both(args.model, device, args.workdir.resolve())  # Inductor builds in another cwd
    if args.compile_only:
        return
    module, example, dtype = build(args.model, device)
    runners = {"eager": module} | {v: torch._inductor.aoti_load_package(str(p)) for v, p in packages.items()}
    batches = [int(b) for b in args.batches.split(",")]
    p50s: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in runners}
    max_error: dict[str, float] = {}
    with torch.inference_mode():
        for batch in batches:
            inputs = [x.to(device) for x in host_inputs(args.model, example, batch, dtype, pinned=False)]
            expected = flat(module(*inputs))
            for name in VARIANTS:
                got = flat(runners[name](*inputs))
                error = max((g.float() - e.float()).abs().max().item() for g, e in zip(got, expected, strict=True))
                max_error[name] = max(max_error.get(name, 0.0), error)
        for round_ in range(args.rounds):
            for batch in batches:
                inputs = host_inputs(args.model, example, batch, dtype, pinned=False)
                for name, runner in runners.items():
                    p50s[name][batch].append(time_batch(runner, inputs, device, args.seconds)["p50_us"])
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)

    medians = {name: {b: statistics.median(v) for b, v in rows.items()} for name, rows in p50s.items()}
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    print(f"\n{args.model} on {gpu}, torch {torch.__version__}; p50 us (median of {args.rounds} rounds)")
    print(
        f"{'batch':>6} {'eager':>10}"
        + "".join(f" {v:>11}" for v in VARIANTS)
        + "".join(f" {'eager/' + v:>18}" for v in VARIANTS)
    )
    for b in batches:
        eager = medians["eager"][b]
        print(
            f"{b:>6} {eager:>10.0f}"
            + "".join(f" {medians[v][b]:>11.0f}" for v in VARIANTS)
            + "".join(f" {eager / medians[v][b]:>17.2f}x" for v in VARIANTS)
        )
    print("max abs error against eager:", {k: f"{v:.3g}" for k, v in max_error.items()})
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        document = {
            "model": args.model,
            "gpu": gpu,
            "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "rounds": p50s,
            "p50_us": medians,
            "max_abs_error": max_error,
        }
        (args.out / f"rewrite-{args.model}.json").write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
