"""A private MongoDB-compatible server for tests and local runs: mongoeco's wire server.

How it works
------------
No MongoDB server can be installed here, but ``mongoeco`` (in the Python 3.13 venv
``.venv-mongo`` that ``make setup`` creates; ``TROUPE_MONGO_PYTHON`` names another interpreter)
ships a server speaking MongoDB's wire protocol that real pymongo talks to. It has no command
line, so :data:`LAUNCHER` is a small script run as ``python -c LAUNCHER HOST PORT ENGINE``: it
starts ``AsyncMongoEcoProxyServer`` (dialect 7.0, pymongo profile 4.19, which pymongo 4.20
accepts) on the port with a memory engine (``ENGINE`` = ``:memory:``) or an SQLite file, prints
one line ``mongoeco ready HOST:PORT`` and serves until SIGTERM or SIGINT.

:class:`MongoServer` starts that process on a free port of 127.0.0.1 (or a given one), waits for
the ready line and then until pymongo's ``ping`` answers, and stops it (``SIGTERM``) or kills it
(``SIGKILL``, a crash); it is a context manager. With ``sqlite=True`` the data lives in a file of
its own directory, so a :meth:`MongoServer.restart` keeps it. Its ``uri`` is what ``MONGODB_URI``
takes. Writes slow down as collections grow (about 400 inserts/s at 500 documents): fit for
functional tests, not for load tests.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from .server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
MONGO_PYTHON = Path(os.environ.get("TROUPE_MONGO_PYTHON", str(ROOT / ".venv-mongo" / "bin" / "python")))
"""The interpreter that has ``mongoeco`` (Python >= 3.13)."""

READY = "mongoeco ready"

LAUNCHER = """
import asyncio, signal, sys
try:
    import bson  # the wire server encodes with pymongo's bson
except ImportError:
    sys.exit("mongoeco's wire server needs pymongo in this venv: run make setup")
from mongoeco.engines import MemoryEngine, SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer

async def main(host, port, engine_path):
    engine = MemoryEngine() if engine_path == ":memory:" else SQLiteEngine(engine_path)
    server = AsyncMongoEcoProxyServer(
        engine=engine, host=host, port=port, mongodb_dialect="7.0", pymongo_profile="4.19"
    )
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("mongoeco ready %s:%d" % (host, port), flush=True)
    await stop.wait()
    await server.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""
"""The server process's script (arguments: host, port, ``:memory:`` or an SQLite path)."""


class MongoServerError(RuntimeError):
    """The server could not start (one line saying why and what to do)."""


def mongo_python() -> Path:
    """The interpreter with mongoeco.

    Raises:
        MongoServerError: it is missing.
    """
    if not MONGO_PYTHON.exists():
        raise MongoServerError(
            f"{MONGO_PYTHON} not found: run make setup (it creates .venv-mongo with mongoeco, "
            "which needs Python >= 3.13) or set TROUPE_MONGO_PYTHON"
        )
    return MONGO_PYTHON


def ping(uri: str, timeout: float = 1.0) -> bool:
    """True if a MongoDB server at ``uri`` answers ``ping`` within ``timeout`` seconds."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    ms = int(timeout * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class MongoServer(ServerProcess):
    """One mongoeco wire server process of our own (see the module docstring).

    Args:
        port: the port to listen on (default: a free one, kept across restarts).
        sqlite: keep the data in an SQLite file (kept across restarts) instead of memory.
        directory: where the SQLite file and the server's log go (default: a temporary one).
    """

    def __init__(self, port: int | None = None, *, sqlite: bool = False, directory: Path | None = None):
        super().__init__(directory, port, "troupe-mongo-")
        self.sqlite = sqlite
        self._lines: list[str] = []
        self._ready = threading.Event()

    @property
    def uri(self) -> str:
        """``mongodb://127.0.0.1:PORT``: what ``MONGODB_URI`` takes."""
        return f"mongodb://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until pymongo's ``ping`` works.

        Raises:
            MongoServerError: mongoeco is missing, or the server exited or stayed silent.
        """
        if self.running:
            return
        python = mongo_python()
        self.dir.mkdir(parents=True, exist_ok=True)
        engine = str(self.dir / "mongo.sqlite3") if self.sqlite else ":memory:"
        self._lines = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [str(python), "-c", LAUNCHER, self.host, str(self.port), engine],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.dir,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not (self._ready.is_set() and ping(self.uri, 1.0)):
            if self.proc.poll() is not None:
                tail = " | ".join(line for line in self._lines[-3:] if line)
                self.proc = None
                raise MongoServerError(f"mongoeco server on port {self.port} exited: {tail or 'no output'}")
            if time.monotonic() > deadline:
                self.kill()
                raise MongoServerError(f"mongoeco server on port {self.port} did not answer in {timeout}s")
            self._ready.wait(0.05)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self._lines.append(line.rstrip("\n"))
                del self._lines[:-50]
                if line.startswith(READY):
                    self._ready.set()
