"""`trtaoti fetch URI --sha256 HEX --to PATH`: the serving pod's init container.

Downloads next to PATH under a temporary name, verifies the sha256 and renames into
place, so the server never starts on a partial or corrupt package. Exit status: 0
done (or already present and verified), 1 storage failure, 3 checksum mismatch.
Imports no torch: init containers start fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trtaoti.storage.errors import ChecksumMismatch, StorageError
from trtaoti.storage.store import file_sha256, open_store
from trtaoti.storage.uri import split_object_uri

EXIT_STORAGE_ERROR = 1
EXIT_CHECKSUM_MISMATCH = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="object to download (s3://, gs://, az://, file://)")
    parser.add_argument("--sha256", required=True, type=_sha256_arg, help="expected sha256 (64 hex digits)")
    parser.add_argument("--to", required=True, type=Path, dest="path", help="destination file")


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.is_file() and file_sha256(path) == args.sha256:
        # An init container re-run after a pod restart on the same emptyDir.
        print(f"fetch: {path} already present and verified (sha256 {args.sha256})", flush=True)
        return 0
    try:
        directory, name = split_object_uri(args.uri)
        store = open_store(directory)
        started = time.monotonic()
        store.download_file(name, path, expected_sha256=args.sha256)
    except ChecksumMismatch as exc:
        print(f"fetch: {exc}", file=sys.stderr, flush=True)
        return EXIT_CHECKSUM_MISMATCH
    except (StorageError, ValueError, OSError) as exc:
        print(f"fetch: {args.uri}: {exc}", file=sys.stderr, flush=True)
        return EXIT_STORAGE_ERROR
    elapsed = time.monotonic() - started
    size = path.stat().st_size
    rate = size / elapsed / 1e6 if elapsed > 0 else float("inf")
    print(f"fetch: {args.uri} -> {path}: {size} bytes in {elapsed:.2f}s ({rate:.0f} MB/s), sha256 verified", flush=True)
    return 0


def _sha256_arg(value: str) -> str:
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"not a sha256 hex digest: {value!r}")
    return value
