"""`trtaoti fetch`: the serving init container's download, verify, rename."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from trtaoti.cli import main
from trtaoti.storage import open_store


@pytest.fixture
def published(tmp_path: Path) -> tuple[str, str]:
    store = open_store(f"file://{tmp_path}/store")
    data = b"package bytes " * 1000
    store.put_bytes("k/model.pt2", data)
    return f"file://{tmp_path}/store/k/model.pt2", hashlib.sha256(data).hexdigest()


def test_fetch_downloads_and_verifies(published, tmp_path: Path, capsys) -> None:
    uri, sha = published
    target = tmp_path / "models" / "model.pt2"
    assert main(["fetch", uri, "--sha256", sha, "--to", str(target)]) == 0
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
    assert "sha256 verified" in capsys.readouterr().out
    # A restarted init container finds the verified file and does not download again.
    assert main(["fetch", uri, "--sha256", sha, "--to", str(target)]) == 0
    assert "already present" in capsys.readouterr().out


def test_corrupted_object_fails_and_leaves_nothing(published, tmp_path: Path, capsys) -> None:
    uri, sha = published
    (tmp_path / "store" / "k" / "model.pt2").write_bytes(b"corrupted")
    target = tmp_path / "models" / "model.pt2"
    assert main(["fetch", uri, "--sha256", sha, "--to", str(target)]) == 3
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not target.exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_object_exits_nonzero_naming_it(tmp_path: Path, capsys) -> None:
    uri = f"file://{tmp_path}/store/none/model.pt2"
    assert main(["fetch", uri, "--sha256", "a" * 64, "--to", str(tmp_path / "m.pt2")]) == 1
    assert "none/model.pt2" in capsys.readouterr().err


def test_bad_digest_is_rejected_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fetch", "file:///x/model.pt2", "--sha256", "xyz", "--to", str(tmp_path / "m")])
    assert exit_info.value.code == 2


def test_fetch_does_not_import_torch(published, tmp_path: Path) -> None:
    uri, sha = published
    code = (
        "import sys; from trtaoti.cli import main; "
        f"rc = main(['fetch', {uri!r}, '--sha256', {sha!r}, '--to', {str(tmp_path / 'm.pt2')!r}]); "
        "assert 'torch' not in sys.modules, 'fetch imported torch'; sys.exit(rc)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
