"""Starting and stopping the lab's daemons as process groups that outlive `lab up`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> int:
    """Start `argv` in its own session (so its group can be signalled as one) and return the pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    return process.pid


def is_running(pid: int, exe: str) -> bool:
    """True if `pid` is alive and still runs `exe` (guards against a recycled pid)."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        actual = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        return False
    return actual.removesuffix(" (deleted)") == str(Path(exe).resolve())


def stop(pid: int, exe: str, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout` seconds."""
    if not is_running(pid, exe):
        _signal_group(pid, signal.SIGKILL)  # children may outlive a dead leader
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid, exe) and not _group_alive(pid):
            return
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (is_running(pid, exe) or _group_alive(pid)):
        time.sleep(0.1)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader keeps the group "alive"; it counts as gone once reaped.
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(_pgid_of(p) == pgid and not _is_zombie(p) for p in _pids())


def _reap(pid: int) -> None:
    """Collect `pid` if it is our child and has exited (the process that ran `lab up` in-process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _pgid_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if len(fields) > 2 else None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return not fields or fields[0] == "Z"
