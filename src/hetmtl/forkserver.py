"""Cheap job start: a fork server that holds the heavy imports warm.

Every training job is its own process (a Snakemake or DVC job), and a job on
the demo or tiny suite spends most of its life importing: torch, MLflow and its
SQLAlchemy store take about 6 s of a tiny job's 9 s on a 2-core machine, while
its training takes under 1 s. Here the first heavy command of a session starts
a server (``python -m hetmtl.forkserver``) that imports them once and waits on
a Unix socket; each later ``hetmtl train|sweep|relations|prepare|aggregate``
sends its arguments, working directory, environment and its stdin/stdout/stderr
to the server, which forks a child that runs the command exactly as the process
would have (same code, same output files, same exit status) and reports the
status back. The job's process stays the one Snakemake or DVC sees: killing it
kills the child (the child watches the connection), and its output goes to the
job's own log.

The socket's name is a hash of the code the server imported (every file of the
``hetmtl`` package, the interpreter and ``sys.path``): an edited module gets a
new server, never a stale one. A server exits after ``IDLE_SECONDS`` without a
request (``HETMTL_FORKSERVER_IDLE`` seconds if set when it starts). Any failure
to reach a server before the command was handed over runs the command in this
process instead, so the server is only ever an optimisation.
``HETMTL_FORKSERVER=0`` turns it off (``HETMTL_FORKSERVER_TRACE=1`` says on
stderr which server ran a command); it is off inside a Slurm job
(``SLURM_JOB_ID`` set), where each job has its own node and nothing to share.
The parent never initialises CUDA or torch's thread pools (it only imports), so
the children start as clean as a new process."""

from __future__ import annotations

import array
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

IDLE_SECONDS = 120
COMMANDS = {"train", "sweep", "tune", "relations", "prepare", "aggregate", "table", "figure"}
PACKAGE = Path(__file__).resolve().parent
STARTUP_ENV = ("PYTHON", "OMP_", "MKL_", "OPENBLAS_", "TORCH", "CUDA_", "LD_", "MLFLOW_ENABLE")


def enabled(command: str) -> bool:
    if command not in COMMANDS or not hasattr(socket, "AF_UNIX") or not hasattr(os, "fork"):
        return False
    if os.environ.get("SLURM_JOB_ID"):
        return False
    return os.environ.get("HETMTL_FORKSERVER", "1") != "0"


def code_key() -> str:
    """Hash of what a server imports: the package's files, interpreter, sys.path."""
    h = hashlib.sha256()
    h.update(sys.executable.encode() + b"\0" + "\0".join(sys.path).encode())
    # settings read once when the interpreter or a library starts, not per job
    fixed = sorted((k, v) for k, v in os.environ.items() if k.startswith(STARTUP_ENV))
    h.update(repr(fixed).encode())
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def server_dir() -> Path:
    """Where the servers' sockets, pid files and logs live (``HETMTL_FORKSERVER_DIR``;
    default a private folder under ``$XDG_RUNTIME_DIR`` or ``/tmp``)."""
    base = os.environ.get("HETMTL_FORKSERVER_DIR")
    base = Path(base) if base else Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"hetmtl-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


def socket_path(key: str) -> Path:
    return server_dir() / f"{key}.sock"


def stop_all(folder: Path | None = None) -> list[int]:
    """Stop every server of ``folder`` (default :func:`server_dir`) by its pid
    file; their running children finish. Returns the pids signalled."""
    stopped = []
    for pid_file in sorted(Path(folder or server_dir()).glob("*.pid")):
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except (ValueError, OSError):
            pass
        pid_file.unlink(missing_ok=True)
    return stopped


# ----------------------------------------------------------------- protocol

def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _recv(sock: socket.socket) -> bytes:
    (n,) = struct.unpack("!I", _recv_exact(sock, 4))
    return _recv_exact(sock, n)


# ------------------------------------------------------------------- client

def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return s
    except OSError:
        s.close()
        return None


def _start_server(path: Path, entry: str) -> socket.socket | None:
    """Start a server for ``path`` (one at a time: a lock file) and connect."""
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path)
        if sock is not None:
            return sock
        if path.exists():
            path.unlink()  # a dead server's socket
        log = open(path.with_suffix(".log"), "ab")
        proc = subprocess.Popen([sys.executable, "-m", "hetmtl.forkserver", str(path), entry], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, env=dict(os.environ),
                                cwd=path.parent)  # not the caller's folder on the server's sys.path
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            sock = _connect(path)
            if sock is not None:
                return sock
            time.sleep(0.05)
    print(f"[hetmtl] the fork server did not start (see {path.with_suffix('.log')})", file=sys.stderr)
    return None


def run(argv: list[str], entry: str) -> int | None:
    """Run ``hetmtl argv`` in a forked child of the server, as ``entry(argv, in_server=True)``
    (``entry``: the command line's ``module:function``); None if no server could take it
    (the caller then runs it in this process)."""
    try:
        path = socket_path(code_key())
        sock = _connect(path) or _start_server(path, entry)
        if sock is None:
            return None
        request = repr({"argv": argv, "entry": entry, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask()})
        fds = [sys.stdin.fileno() if _valid(0) else os.open(os.devnull, os.O_RDONLY), 1, 2]
        sock.sendmsg([struct.pack("!I", len(request))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        sock.sendall(request.encode())
    except OSError as exc:
        print(f"[hetmtl] fork server unavailable ({exc}); running in this process", file=sys.stderr)
        return None
    try:  # the child acknowledges the request before it runs anything
        if _recv_exact(sock, 1) != b"\1":
            raise ConnectionError("no acknowledgement")
    except (OSError, ConnectionError) as exc:
        print(f"[hetmtl] fork server did not take the command ({exc}); running in this process", file=sys.stderr)
        return None
    # From here on the command is the server's: never run it a second time.
    try:
        (rc,) = struct.unpack("!i", _recv_exact(sock, 4))
        return rc
    except (OSError, ConnectionError) as exc:
        print(f"error: the fork server's child for `hetmtl {' '.join(argv)}` died without a status ({exc}); "
              f"see {path.with_suffix('.log')}", file=sys.stderr)
        return 1


def _valid(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------- server

def _entry(entry: str):
    """The function ``module:function`` names (the command line's entry point, handed
    over by its caller, so that this module imports no entry point: no import circle)."""
    import importlib

    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)


def _warm(entry: str) -> None:
    """The imports every heavy command pays, done once (no CUDA, no threads)."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import mlflow.tracking  # noqa: F401
    import torch._dynamo  # noqa: F401 - torch.optim's first call imports it (2 s)

    _entry(entry)  # the entry point's module and what it imports at the top
    import hetmtl.data.prepare  # noqa: F401
    import hetmtl.reporting.aggregate  # noqa: F401
    import hetmtl.training.job  # noqa: F401


def _child(conn: socket.socket) -> int:
    msg, fds, _, _ = socket.recv_fds(conn, 4, 3)
    (n,) = struct.unpack("!I", msg)
    import ast

    request = ast.literal_eval(_recv_exact(conn, n).decode())
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    conn.sendall(b"\1")  # taken: from here on, the caller never runs the command itself
    if os.environ.get("HETMTL_FORKSERVER_TRACE"):
        print(f"[hetmtl] forked by the server {os.getppid()} as {os.getpid()} in {request['cwd']}", file=sys.stderr)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def watch():  # the job's process is gone (killed): stop the job too
        try:
            conn.recv(1)
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    main = _entry(request["entry"])

    sys.argv = ["hetmtl", *request["argv"]]
    try:
        rc = main(request["argv"], in_server=True)
    except SystemExit as exc:  # as the interpreter: a message is printed, status 1
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        rc = 130
    except BaseException:  # noqa: BLE001 - as the interpreter would: traceback, status 1
        import traceback

        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return int(rc or 0)


def serve(path: Path, entry: str) -> None:
    _warm(entry)
    import torch

    if torch.cuda.is_initialized():  # a child could not use the GPU
        raise SystemExit("fork server: CUDA was initialised while importing; not serving")
    me = os.getpid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(64)
    server.settimeout(float(os.environ.get("HETMTL_FORKSERVER_IDLE", IDLE_SECONDS)))
    pid_file = path.with_suffix(".pid")
    pid_file.write_text(f"{me}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop_all: clean up the socket and pid file
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: no zombies
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                break
            _fork(server, conn)
        # Idle: no new client can connect once the name is gone; serve the ones
        # already queued (they connected before), then stop.
        path.unlink()
        server.setblocking(False)
        while True:
            try:
                conn, _ = server.accept()
            except (TimeoutError, BlockingIOError):
                break
            conn.setblocking(True)
            _fork(server, conn)
    finally:
        if os.getpid() == me:  # never in a child
            server.close()
            for p in (path, pid_file):
                if p.exists():
                    p.unlink()


def _fork(server: socket.socket, conn: socket.socket) -> None:
    try:
        pid = os.fork()
    except OSError as exc:  # no ack sent: the caller runs the command itself
        print(f"fork server: fork failed ({exc})", file=sys.stderr)
        conn.close()
        return
    if pid == 0:
        rc = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            server.close()
            conn.settimeout(None)
            rc = _child(conn)
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
        finally:
            try:
                conn.sendall(struct.pack("!i", rc if -2**31 <= rc < 2**31 else 1))
            finally:
                os._exit(rc & 0xFF)
    conn.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2])
