"""Background processes that never outlive their owner.

Each component runs in its own session (process group) with output to a log file.
Its pid is recorded in `<state>/pids/<name>.pid` so `dev-cluster.sh down`, a later
process, can stop it; `stop` checks the pid still runs the same binary before
signalling, so a recycled pid is never hit. When `die_with_parent` is set (pytest),
the kernel sends SIGTERM to the child if the owning process dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ProcessSet:
    """Starts named processes and stops them all, newest first."""

    def __init__(self, state_dir: Path, *, die_with_parent: bool) -> None:
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._die_with_parent = die_with_parent
        self._started: dict[str, subprocess.Popen] = {}
        # name -> (argv, env) of its last start, for start_again after a fault test stops it
        self._commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                preexec_fn=_die_with_parent if self._die_with_parent else None,  # noqa: PLW1509 - PR_SET_PDEATHSIG is the child's to set; the callback only calls prctl
            )
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid} {argv[0]}\n")
        self._started[name] = proc
        self._commands[name] = (argv, env)
        return proc

    def start_again(self, name: str) -> subprocess.Popen:
        """Starts `name` with the command and environment of its last start (after `stop`
        or `kill`: a restarted component, same flags, same data directory)."""
        if name in self._started and self._started[name].poll() is None:
            raise RuntimeError(f"{name} still runs; stop or kill it first")
        argv, env = self._commands[name]
        return self.start(name, argv, env=env)

    def pid(self, name: str) -> int | None:
        """The pid of `name` while it runs (started by this object), else None."""
        proc = self._started.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    def kill(self, name: str) -> None:
        """SIGKILL to the process group of `name`, no grace: a crash, not a shutdown."""
        proc = self._started.pop(name, None)
        if proc is None:
            raise KeyError(f"{name} was not started by this ProcessSet")
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def exited(self) -> dict[str, int]:
        """Processes started by this object that have already exited, with their codes."""
        return {n: p.returncode for n, p in self._started.items() if p.poll() is not None}

    def stop(self, name: str, timeout: float = 15.0) -> None:
        """Stops one process (SIGTERM, then SIGKILL after `timeout`), also one a previous
        ProcessSet on the same state directory started; a no-op when none runs."""
        pid_file = self.pid_dir / f"{name}.pid"
        if pid_file.exists():
            _stop_recorded_one(pid_file, timeout)
        proc = self._started.pop(name, None)
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop_all(self, timeout: float = 15.0) -> None:
        stop_recorded(self.pid_dir, timeout)
        for proc in self._started.values():
            if proc.poll() is None:  # pid file was lost: still ours to stop
                _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        self._started.clear()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _runs(pid: int, binary: str) -> bool:
    try:
        exe = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return exe.decode(errors="replace") == binary


def live_recorded(pid_dir: Path) -> list[str]:
    """Names of recorded processes that still run their recorded binary."""
    live = []
    for pid_file in pid_dir.glob("*.pid") if pid_dir.is_dir() else []:
        pid_text, _, binary = pid_file.read_text().strip().partition(" ")
        if _runs(int(pid_text), binary):
            live.append(pid_file.stem)
    return sorted(live)


def stop_recorded(pid_dir: Path, timeout: float = 15.0) -> list[str]:
    """Stops every process recorded in `pid_dir`, newest first; returns the names stopped.

    One at a time, in reverse start order: the apiserver's graceful shutdown stalls
    when etcd goes away underneath it. SIGTERM, then SIGKILL after `timeout`.
    """
    if not pid_dir.is_dir():
        return []
    newest_first = sorted(pid_dir.glob("*.pid"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return [pid_file.stem for pid_file in newest_first if _stop_recorded_one(pid_file, timeout)]


def _stop_recorded_one(pid_file: Path, timeout: float) -> bool:
    """SIGTERM to the recorded process group, SIGKILL after `timeout`; True if it ran."""
    pid_text, _, binary = pid_file.read_text().strip().partition(" ")
    pid = int(pid_text)
    ran = _runs(pid, binary)
    if ran:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _runs(pid, binary) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _runs(pid, binary):
            _signal_group(pid, signal.SIGKILL)
        _reap(pid)
    pid_file.unlink(missing_ok=True)
    return ran


def _reap(pid: int) -> None:
    """Collects our own exited child so it does not linger as a zombie that /proc still lists."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
