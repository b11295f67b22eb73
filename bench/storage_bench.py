"""Upload and fetch throughput of trtaoti.storage against obstore used bare.

    python bench/storage_bench.py [--sizes 64,512] [--repeats 3] [--out bench/results/storage.md]

For each store (file:// on local disk, s3:// on a MinIO over loopback) and file size:

  upload  trtaoti: Store.upload_file (sha256 computed while streaming, 16 MiB parts, 8 in flight)
          bare:    obstore.put(store, path, Path(file))  (obstore's defaults: 5 MiB parts, 12 in flight)
  fetch   trtaoti: Store.download_file (sha256 verified, temporary file, fsync, atomic rename)
          bare:    obstore.get(...) streamed into a file (no hash, no fsync)

The ratio is trtaoti / bare throughput: the price of the integrity guarantees (or
their gain, where part sizes help). MinIO comes from `make dev-cluster` when it is up,
otherwise one is started for the run (tests/support/minio_server.py).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import obstore
from obstore.store import LocalStore, S3Store

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from trtaoti.storage import open_store  # noqa: E402

MiB = 1024 * 1024


@contextmanager
def minio_env() -> Iterator[dict[str, str]]:
    from support.binaries import require_binaries
    from support.devcluster import DEV_DIR, read_env_file
    from support.minio_server import minio_answers, start_minio
    from support.ports import free_port
    from support.processes import ProcessSet

    dev_env = DEV_DIR / "s3.env"
    if dev_env.is_file() and minio_answers(env := read_env_file(dev_env)):
        yield env
        return
    bins = require_binaries(("minio",))
    with tempfile.TemporaryDirectory(prefix="storage-bench-minio-") as state:
        procs = ProcessSet(Path(state), die_with_parent=True)
        try:
            yield start_minio(procs, bins, Path(state) / "data", free_port(), free_port())
        finally:
            procs.stop_all()


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for _ in range(size // (64 * MiB)):
            f.write(os.urandom(64 * MiB))
        f.write(os.urandom(size % (64 * MiB)))


def paired(
    ours: Callable[[], object], bare: Callable[[], object], repeats: int, cleanup: Callable[[], object]
) -> tuple[float, float]:
    """Median seconds of each, run as interleaved pairs (order alternating) so that
    load from other processes on a shared machine hits both sides alike."""
    samples: dict[str, list[float]] = {"ours": [], "bare": []}
    for repeat in range(repeats):
        order = [("ours", ours), ("bare", bare)]
        for name, action in order if repeat % 2 == 0 else reversed(order):
            cleanup()
            start = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - start)
    return statistics.median(samples["ours"]), statistics.median(samples["bare"])


def bare_download(store: object, relpath: str, target: Path) -> None:
    with target.open("wb") as f:
        for chunk in obstore.get(store, relpath):
            f.write(chunk)


def bench_store(
    label: str, uri: str, bare_store: object, env: dict[str, str], sizes: list[int], repeats: int, scratch: Path
) -> list[dict]:
    store = open_store(uri, env)
    rows = []
    for size_mib in sizes:
        size = size_mib * MiB
        source = scratch / f"source-{size_mib}.bin"
        random_file(source, size)
        ours_rel, bare_rel = f"bench/ours-{size_mib}.bin", f"bench/bare-{size_mib}.bin"
        target = scratch / "fetched.bin"

        # paired() calls these at once, in this iteration: binding the loop's values is for the linter.
        upload_ours, upload_bare = paired(
            lambda source=source, ours_rel=ours_rel: store.upload_file(source, ours_rel),
            lambda source=source, bare_rel=bare_rel: obstore.put(bare_store, bare_rel, source),
            repeats,
            lambda: None,
        )
        sha = store.upload_file(source, ours_rel).sha256
        fetch_ours, fetch_bare = paired(
            lambda ours_rel=ours_rel, target=target, sha=sha: store.download_file(
                ours_rel, target, expected_sha256=sha
            ),
            lambda bare_rel=bare_rel, target=target: bare_download(bare_store, bare_rel, target),
            repeats,
            lambda target=target: target.unlink(missing_ok=True),
        )
        for operation, ours, bare in (("upload", upload_ours, upload_bare), ("fetch", fetch_ours, fetch_bare)):
            rows.append(
                {
                    "store": label,
                    "operation": operation,
                    "size": size_mib,
                    "ours": size / ours / 1e6,
                    "bare": size / bare / 1e6,
                }
            )
            print(
                f"{label:8} {operation:6} {size_mib:5} MiB  trtaoti {size / ours / 1e6:8.0f} MB/s  bare {size / bare / 1e6:8.0f} MB/s  ratio {bare / ours:5.2f}",
                flush=True,
            )
        store.delete_prefix("bench")
        source.unlink()
        target.unlink(missing_ok=True)
    return rows


def markdown(rows: list[dict], repeats: int) -> str:
    lines = [
        "# Object storage throughput: trtaoti.storage vs obstore used bare",
        "",
        f"`python bench/storage_bench.py` on {datetime.date.today()}: {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, obstore {obstore.__version__}; median of {repeats} interleaved runs; "
        "MB/s = 10^6 bytes per second. MinIO runs on the same machine (loopback), so both sides share the CPU. "
        f"Load average when the run ended: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min): "
        "the machine is shared, so single numbers move between runs; compare a row's two columns.",
        "",
        "| store | operation | size | trtaoti.storage | obstore bare | ratio (trtaoti / bare) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines.extend(
        f"| {row['store']} | {row['operation']} | {row['size']} MiB | {row['ours']:.0f} MB/s "
        f"| {row['bare']:.0f} MB/s | {row['ours'] / row['bare']:.2f} |"
        for row in rows
    )
    lines += [
        "",
        "What the ratios mean:",
        "",
        "- trtaoti's upload hashes every byte with sha256 as it streams it (one pass: the digest is of",
        "  the bytes sent), and its fetch verifies the digest, writes a temporary file and renames it;",
        "  the bare client does neither. One core hashes about 2 GB/s here, and with 2 cores shared by",
        "  client, hasher and MinIO the hash thread cannot run beside the transfer: that is most of",
        "  the gap on fetch. On a node with spare cores the hash overlaps the transfer.",
        "- S3 uploads: trtaoti uses 16 MiB parts, 8 in flight; bare obstore.put its defaults (5 MiB",
        "  parts, 12 in flight). At 512 MiB the larger parts more than pay for the hashing.",
        "- file://: both sides are bound by this VM's page cache and disk, and swing between runs (earlier",
        "  runs here gave trtaoti / bare 0.3 to 0.5 on upload, bare obstore copying a Path natively",
        "  while trtaoti reads through Python to hash); a 512 MiB package takes about a second either way.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,512", help="file sizes in MiB, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--no-s3", action="store_true", help="skip the MinIO runs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as scratch_name:
        scratch = Path(scratch_name)
        local_root = scratch / "store"
        rows += bench_store(
            "file://", f"file://{local_root}", LocalStore(local_root, mkdir=True), {}, sizes, args.repeats, scratch
        )
        if not args.no_s3:
            with minio_env() as env:
                bucket = env["TRTAOTI_TEST_BUCKET"]
                bare = S3Store(
                    bucket,
                    config={
                        "endpoint": env["AWS_ENDPOINT_URL"],
                        "access_key_id": env["AWS_ACCESS_KEY_ID"],
                        "secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
                        "region": env.get("AWS_REGION", "us-east-1"),
                    },
                    client_options={"allow_http": True},
                )
                rows += bench_store("s3 MinIO", f"s3://{bucket}", bare, env, sizes, args.repeats, scratch)
    text = markdown(rows, args.repeats)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
