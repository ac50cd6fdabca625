"""What the launchers of outside servers share: ``redis-server``, ``prometheus``, mongoeco.

A :class:`ServerProcess` owns one child process and a directory (a temporary one it removes on
:meth:`~ServerProcess.close`, unless the caller gave one). Subclasses write ``start`` (launch and
wait until the server answers); this base gives them the rest: ``running``, ``kill`` (``SIGKILL``,
a crash), ``stop`` (``SIGTERM``, then ``SIGKILL`` after a grace), ``restart``, ``close`` and use
as a context manager. Used by the tests and ``troupe bench jobs``; the system's own servers are
never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Self


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server process of our own, in a directory of its own (see the module docstring)."""

    def __init__(self, directory: Path | None, port: int | None, prefix: str) -> None:
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix=prefix)) if directory is None else directory
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it answers (subclasses)."""
        raise NotImplementedError

    def kill(self) -> None:
        """Stop the server abruptly (``SIGKILL``): a crash; only what it synced survives."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server cleanly (``SIGTERM``), killing it if it lingers past ``grace``."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, crash: bool = True) -> None:
        """Kill (``crash``) or stop the server, then start it again on the same port and files."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        """Kill the server and remove its directory if this object made it."""
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
