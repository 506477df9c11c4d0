"""Child processes tied to the life of the process that starts them.

On Linux a tied child gets a parent-death signal (``prctl(PR_SET_PDEATHSIG)``, set in the child before it execs), so
the embedded Redis and Postgres of a `spane dev` or a test run end with it, even when it is killed with SIGKILL.
Elsewhere this is a plain ``Popen``: the owner's normal stop and the next start's stale-pidfile checks remain.

The kernel sends that signal when the *thread* that forked the child ends, not the process. The main thread lives as
long as the process; a call from any other thread (``asyncio.to_thread``, a pool) is handed to one daemon thread
that lives as long as the process too, so a short-lived caller thread never takes its servers with it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

_PR_SET_PDEATHSIG = 1
Spawn = Callable[[], subprocess.Popen[bytes]]


@functools.cache
def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _die_with(prctl: Any, death_signal: signal.Signals, owner: int) -> Callable[[], None]:
    def preexec() -> None:
        # In the child, between fork and exec: only the pre-resolved libc call, no import, no lock. Set after
        # Popen's user/group switch, which would clear it; kept across exec (no set-uid binary here).
        if prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != owner:  # the owner died before the tie was made: nobody will stop this one
            os._exit(1)

    return preexec


class _Spawner:
    """The one daemon thread that forks the tied children asked for from threads other than the main one."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Spawn, Future[subprocess.Popen[bytes]]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run(self, spawn: Spawn) -> subprocess.Popen[bytes]:
        if threading.current_thread() is threading.main_thread():
            return spawn()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # not alive: this is a forked copy
                self._thread = threading.Thread(target=self._serve, name="spane-spawner", daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((spawn, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            spawn, done = self._jobs.get()
            try:
                done.set_result(spawn())
            except BaseException as e:  # handed to the caller, which raises it
                done.set_exception(e)


# Process-wide by nature: the thread must outlive every caller of this process.
_SPAWNER = _Spawner()


def spawn_tied(args: Sequence[str], death_signal: signal.Signals, **popen: Any) -> subprocess.Popen[bytes]:
    """``Popen(args, **popen)`` whose child gets ``death_signal`` when this process dies, however it dies."""
    prctl = _prctl()
    if prctl is None:
        child: subprocess.Popen[bytes] = subprocess.Popen(args, **popen)
        return child
    preexec = _die_with(prctl, death_signal, os.getpid())
    return _SPAWNER.run(lambda: subprocess.Popen(args, preexec_fn=preexec, **popen))
