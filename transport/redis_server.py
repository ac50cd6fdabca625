"""A private ``redis-server``: own port, own directory, durable, restartable.

How it works
------------
:class:`RedisServer` starts ``redis-server`` (``/usr/bin/redis-server`` unless ``REDIS_SERVER``
names another) on a free port of 127.0.0.1, with its files in a directory of its own:
``appendonly yes``, ``appendfsync always`` by default (an acknowledged write is on disk; the
benchmark may ask for ``everysec``) and ``save ""`` (no RDB snapshots).
:meth:`RedisServer.start` returns once the server answers ``PING`` with ``PONG`` (not
``LOADING``), so a restarted server has replayed its append-only file by then.
:meth:`RedisServer.restart` kills it (``SIGKILL``, a crash) or shuts it down, and starts it
again on the same port and directory. The system Redis on 6379 is never touched. Used by
``troupe bench jobs`` and by the tests (through ``troupe_testkit.redis_server``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from .server_process import ServerProcess

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


def ping(port: int, timeout: float = 0.5) -> bytes | None:
    """The first line of the server's answer to ``PING`` (``b"+PONG"``), or None if none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    return None
                data += chunk
            return data.split(b"\r\n", 1)[0]
    except OSError:
        return None


class RedisServer(ServerProcess):
    """One ``redis-server`` process of our own (see the module docstring)."""

    def __init__(
        self, directory: Path | None = None, port: int | None = None, fsync: bool | str = True
    ) -> None:
        super().__init__(directory, port, "troupe-redis-")
        # appendfsync: True means "always" (an acknowledged write is on disk), False "no"
        self.fsync = fsync if isinstance(fsync, str) else ("always" if fsync else "no")

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers ``PONG``."""
        if self.running:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(f"{REDIS_SERVER} not found: install redis-server or set REDIS_SERVER")
        args = [
            REDIS_SERVER,
            "--port", str(self.port), "--bind", self.host, "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
            "--daemonize", "no", "--logfile", str(self.dir / "redis.log"), "--protected-mode", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while ping(self.port) != b"+PONG":
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server on port {self.port} exited: {log}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {timeout}s")
            time.sleep(0.01)
