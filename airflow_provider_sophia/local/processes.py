"""Background service processes of the embedded stack, tracked by state files.

Each service is a child process listening on a loopback port; its pid and port live in
``<state_dir>/run/<name>.json`` so that ``up`` twice, ``down`` with nothing running, a
port in use and a process that died are each reported clearly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Return whether a process with ``pid`` exists (and is not a zombie we can reap)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class ServiceState:
    """Where a running service is: its pid and loopback port."""

    name: str
    pid: int
    port: int


class ManagedService:
    """One loopback service started as ``python -m <module> --port P <args>``.

    :param name: short name, also the state file's name.
    :param module: the module to run with ``python -m``.
    :param state_dir: the stack's state directory (``.sophia``).
    :param args: further command-line arguments.
    """

    def __init__(self, name: str, module: str, state_dir: Path, args: list[str] | None = None) -> None:
        self.name = name
        self.module = module
        self.state_dir = Path(state_dir)
        self.args = args or []

    @property
    def state_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def status(self) -> ServiceState | None:
        """Return the running service's state, or ``None`` (clearing a stale state file)."""
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        state = ServiceState(self.name, int(data["pid"]), int(data["port"]))
        if pid_alive(state.pid) and port_open(state.port):
            return state
        self.state_file.unlink(missing_ok=True)
        return None

    def start(self, port: int | None = None, timeout: float = 30.0) -> tuple[ServiceState, bool]:
        """Start the service unless it runs already; return its state and whether it was started.

        :param port: the loopback port; a free one when ``None``.
        :param timeout: seconds to wait until the port accepts connections.
        :raises ServiceError: when the port is taken by another process or the service dies.
        """
        running = self.status()
        if running is not None:
            if port is not None and port != running.port:
                raise ServiceError(
                    f"{self.name} already runs on port {running.port} (pid {running.pid}); "
                    f"run `python -m airflow_provider_sophia.local down` before asking for port {port}."
                )
            return running, False
        if port is not None and port_open(port):
            raise ServiceError(
                f"Port {port} on {LOOPBACK} is already in use by another process; "
                f"choose another port for {self.name} or stop what listens there."
            )
        port = port or free_port()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log_handle:
            process = subprocess.Popen(
                [sys.executable, "-m", self.module, "--port", str(port), *self.args],
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                self._kill(process.pid)
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise ServiceError(f"{self.name} did not start on port {port}; its log ends with:\n{tail}")
            time.sleep(0.05)
        state = ServiceState(self.name, process.pid, port)
        self.state_file.write_text(json.dumps({"pid": state.pid, "port": state.port}))
        log.info("%s started on %s:%s (pid %s)", self.name, LOOPBACK, port, process.pid)
        return state, True

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the service; return whether one was running."""
        running = self.status()
        if running is None:
            return False
        self._kill(running.pid, timeout)
        self.state_file.unlink(missing_ok=True)
        log.info("%s stopped (pid %s)", self.name, running.pid)
        return True

    @staticmethod
    def _kill(pid: int, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return
                time.sleep(0.05)
