"""The server checks a package before loading it: the zip's structure and every
member's CRC-32, and with --sha256 (or TRTAOTI_MODEL_SHA256) the file's digest. A
damaged package must stop the server with a one-line error naming the failed check,
never load (a flipped byte in the model's .so used to serve wrong values, or crash)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

import server_support as support

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, before name and extra
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")  # central directory entry, before its name


@pytest.fixture
def package(tmp_path) -> Path:
    support.build_server()
    copy = tmp_path / "model.pt2"
    shutil.copyfile(support.build_package(2, 4, 8), copy)
    return copy


def _member(package: Path, suffix: str) -> zipfile.ZipInfo:
    with zipfile.ZipFile(package) as archive:
        return next(info for info in archive.infolist() if info.filename.endswith(suffix))


def _data_offset(package: Path, info: zipfile.ZipInfo) -> int:
    with package.open("rb") as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
    name_length, extra_length = fields[-2:]
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _overwrite(package: Path, offset: int, data: bytes) -> None:
    with package.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def _start(package: Path, *args: str, env: dict | None = None, timeout: float = 120) -> tuple[int | None, str]:
    """Runs the server until it exits or says it is serving (then stops it). Returns the
    exit code (None when it served) and its stderr."""
    process = subprocess.Popen(
        [str(support.SERVER_BIN), "--model", str(package), "--host", "127.0.0.1", "--port", "0", "--no-warmup", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines = []
    watchdog = threading.Timer(timeout, process.kill)  # a hang ends the stderr loop too
    watchdog.start()
    try:
        for line in process.stderr:  # ends when the process exits
            lines.append(line)
            if '"serving"' in line:
                process.terminate()
                process.communicate(timeout=60)
                return None, "".join(lines)
        return process.wait(timeout=60), "".join(lines)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()


def _fatal(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("{") and json.loads(line).get("msg") == "fatal":
            return json.loads(line)["error"]
    raise AssertionError(f"no fatal log line in:\n{stderr}")


def _refused(package: Path, *args: str, env: dict | None = None) -> str:
    rc, stderr = _start(package, *args, env=env)
    assert rc is not None, f"the server started serving a damaged package:\n{stderr[-2000:]}"
    assert rc != 0, stderr
    assert '"loading model"' not in stderr, "it began loading before the check"
    return _fatal(stderr)


def test_flipped_bytes_in_the_model_library_are_refused(package):
    so = _member(package, ".so")
    start = _data_offset(package, so)
    rng = random.Random(5)
    with package.open("r+b") as f:
        for offset in sorted(rng.sample(range(start + 4096, start + so.compress_size - 4096), 16)):
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ 0xFF]))
    with zipfile.ZipFile(package) as archive:  # still a readable zip: only the data changed
        assert archive.testzip() == so.filename
    assert _refused(package) == f"crc mismatch in member {so.filename}"


def test_a_stale_crc_is_refused(package):
    """The data is intact but the recorded CRC-32 (central directory and the member's
    own record alike) no longer matches it, as after a partial rewrite."""
    member = _member(package, "archive_format")
    stale = struct.pack("<L", member.CRC ^ 0x5A5A5A5A)
    if member.flag_bits & 0x08:  # torch's writer: the CRC follows the data, in a data descriptor
        descriptor = _data_offset(package, member) + member.compress_size
        signature = package.read_bytes()[descriptor : descriptor + 4] == b"PK\x07\x08"
        _overwrite(package, descriptor + (4 if signature else 0), stale)
    else:
        _overwrite(package, member.header_offset + 14, stale)  # local header: CRC at 14
    data = package.read_bytes()
    central = data.rindex(member.filename.encode()) - _CENTRAL_HEADER.size
    assert data[central : central + 4] == b"PK\x01\x02"
    _overwrite(package, central + 16, stale)  # central directory: CRC at 16
    assert _refused(package) == f"crc mismatch in member {member.filename}"


def test_a_truncated_package_is_refused(package):
    size = package.stat().st_size
    with package.open("r+b") as f:
        f.truncate(size * 2 // 3)
    message = _refused(package)
    assert message.startswith("package is not a valid zip archive"), message


def test_a_wrong_sha256_is_refused_from_the_flag_and_the_environment(package):
    actual = hashlib.sha256(package.read_bytes()).hexdigest()
    wrong = hashlib.sha256(b"another package").hexdigest()
    assert _refused(package, "--sha256", wrong) == f"sha256 mismatch: expected {wrong} got {actual}"
    assert _refused(package, env={"TRTAOTI_MODEL_SHA256": wrong}) == f"sha256 mismatch: expected {wrong} got {actual}"


def test_a_malformed_sha256_is_a_flag_error(package):
    rc, stderr = _start(package, "--sha256", "abc")
    assert rc == 2 and "--sha256 needs 64 hex digits" in stderr, stderr


def test_the_right_sha256_starts(package):
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    rc, stderr = _start(package, "--sha256", digest.upper())  # hex digits in either case
    assert rc is None, stderr[-2000:]
    messages = [json.loads(line)["msg"] for line in stderr.splitlines() if line.startswith("{")]
    assert messages.index("package verified") < messages.index("loading model"), messages
