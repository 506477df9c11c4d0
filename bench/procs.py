"""Child processes of the benchmark: start them so that they die with it, stop them, and read their peak RSS.

Peak RSS is the kernel's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``), reset before each workload by
writing ``5`` to ``/proc/<pid>/clear_refs``, so that each workload reports its own peak; where the reset is not
allowed, a sampler thread keeps the highest RSS it saw instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1
# Looked up once here: between fork and exec the child must not load libraries (another thread may hold a lock).
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def spawn(args: Sequence[str], env: dict[str, str], log: Path, *, own_group: bool = False) -> subprocess.Popen[bytes]:
    """Start ``args`` from the repository root with ``env`` added, output appended to ``log``.

    The child gets SIGTERM when the benchmark dies (PR_SET_PDEATHSIG), so a killed run leaves no service behind.
    ``own_group`` puts it in a new process group, so that its own children (Celery's pool) can be ended together.
    """
    with log.open("ab") as handle:
        return subprocess.Popen(
            list(args),
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            process_group=0 if own_group else None,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0, *, group: bool = False) -> None:
    """SIGTERM, wait, then SIGKILL (the whole process group when ``group``)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _status_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class PeakRss:
    """Peak resident memory of a set of named processes over a window (MB)."""

    pids: dict[str, int]
    _sampled: dict[str, int] = field(default_factory=dict)
    _hwm_ok: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PeakRss:
        for pid in self.pids.values():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                self._hwm_ok = False
        self._sampled = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self._sample_once()

    def _sample_once(self) -> None:
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(pid).memory_info().rss
                self._sampled[name] = max(self._sampled.get(name, 0), rss)

    def stop(self) -> dict[str, float]:
        """The peak RSS of each process in MB since ``start``."""
        self._sample_once()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peaks: dict[str, float] = {}
        for name, pid in self.pids.items():
            hwm = _status_kb(pid, "VmHWM") if self._hwm_ok else None
            sampled = self._sampled.get(name, 0) / 2**20
            peaks[name] = round(max(hwm / 1024 if hwm else 0.0, sampled), 1)
        return peaks


def wait_until(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class CpuAccount:
    """Machine CPU over a window: each named process of ours, and everything else on the machine.

    ``named`` maps a name to a pid, or to ``(pid, True)`` to count the process with all its descendants (Postgres:
    the postmaster and its backends). This benchmark process counts as ``bench``. Others (say, other people's test
    runs on a shared machine) are the machine's busy time less ours. Per process: % of one core; totals: % of the
    machine.
    """

    named: dict[str, int | tuple[int, bool]] = field(default_factory=dict)
    _t0: float = 0.0
    _busy0: float = 0.0
    _ours0: dict[str, dict[int, float]] = field(default_factory=dict)

    def _ours(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, spec in {"bench": os.getpid(), **self.named}.items():
            pid, tree = spec if isinstance(spec, tuple) else (spec, False)
            members = _tree(pid) if tree else _tree(pid)[:1]
            times: dict[int, float] = {}
            for proc in members:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    times[proc.pid] = t.user + t.system
            out[name] = times
        return out

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def start(self) -> CpuAccount:
        self._t0, self._busy0, self._ours0 = time.monotonic(), self._busy(), self._ours()
        return self

    def stop(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy = self._busy() - self._busy0
        per: dict[str, float] = {}
        for name, times in self._ours().items():
            before = self._ours0.get(name, {})
            per[name] = sum(t - before.get(pid, 0.0) for pid, t in times.items())
        ours = sum(per.values())
        cores = psutil.cpu_count() or 1
        return {
            "machine_busy_pct": round(100 * busy / (wall * cores), 1),
            "ours_pct": round(100 * ours / (wall * cores), 1),
            "others_pct": round(max(0.0, 100 * (busy - ours) / (wall * cores)), 1),
            "per_process_pct_of_core": {name: round(100 * t / wall, 1) for name, t in per.items()},
        }


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def redis_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
