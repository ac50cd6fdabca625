"""A small trio-native Redis client: one connection, pipelined commands, Lua scripts by SHA.

How it works
------------
:class:`RedisConn` holds one TCP connection (opened by ``trio.open_tcp_stream``, then used as
a plain non-blocking socket) and one ``hiredis.Reader`` that parses RESP2 replies in C. A call
packs its commands with ``hiredis.pack_command``, sends them at once and reads exactly as many
replies back: :meth:`RedisConn.pipeline` is one round trip for any number of commands,
:meth:`RedisConn.execute` a pipeline of one. Error replies come back as :class:`RedisReplyError`
(raised, or left in the list when asked).

redis-py's asyncio client does not run under trio, and a blocking client in a worker thread
cannot be cancelled cleanly (see FINDINGS.md, "Redis from trio"), hence this module: trio
cancels a call here at any ``await``, and the connection is then simply dropped.

- **One scheduler pass per round trip**: each trio checkpoint costs a pass of the run loop,
  so a call checks for cancellation on entry, takes a free lock with ``acquire_nowait``, sends
  with a non-blocking ``send`` (``wait_writable`` only if the kernel buffer is full), and
  yields once, in ``wait_readable`` for the first reply bytes; later reads try ``recv`` before
  waiting again. Work the caller can do before the replies (``while_waiting``) runs between the
  send and that wait, while the server works.
- **Concurrency**: a semaphore of one serialises round trips (a call that finds it held waits
  in ``acquire``, FIFO), so tasks can share one connection; replies always match the requests
  they answer.
- **Begun calls**: :meth:`RedisConn.begin` sends a call from synchronous code (a message being
  delivered) when the connection is open and free, and any task then reads its replies with
  :meth:`RedisConn.finish`, which frees the connection: the request leaves without waiting for
  a scheduler pass.
- **Failures**: a refused or timed-out connect, a reset, an EOF, a reply slower than
  ``timeout`` or a cancelled call (even one cancelled half-way through sending) drop the
  connection (its replies could be out of step) and raise :class:`RedisUnavailable`, one line
  naming ``host:port`` (a cancelled call raises trio's ``Cancelled``). The next call connects
  again (``AUTH`` and ``SELECT`` included), so a restarted server is picked up without help.
- **Scripts**: :class:`Script` carries a Lua source and its SHA1, :class:`Function` a Redis
  Functions library (Redis >= 7) and the name ``FCALL`` calls. Commands of the scripts and
  functions the connection knows (:meth:`RedisConn.register`, or any :meth:`RedisConn.evalsha`)
  that come back ``NOSCRIPT`` or ``Function not found`` (a restarted or flushed server) are
  answered by ``SCRIPT LOAD`` or ``FUNCTION LOAD REPLACE`` and sent again, in their order,
  within the same call (after any command of the pipeline that did run, should another client
  load it in between).

A command whose reply was lost with the connection may or may not have run: callers resend
only commands that are safe to repeat.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import hiredis
import trio

Arg = str | bytes | int | float
"""One argument of a Redis command (numbers are sent in their decimal form)."""

Command = Sequence[Arg]
"""A Redis command: its name, then its arguments, e.g. ``("SET", "k", "v")``."""

DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_TIMEOUT: Final = 30.0
_READ_SIZE: Final = 1 << 16


class RedisUnavailable(ConnectionError):
    """The Redis server cannot be reached or stopped answering; the message names ``host:port``."""


class RedisReplyError(Exception):
    """An error reply from Redis (``ERR ...``, ``NOSCRIPT ...``, ``LOADING ...``)."""

    @property
    def code(self) -> str:
        """The error's first word: ``ERR``, ``NOSCRIPT``, ``WRONGTYPE``, ``LOADING``, ..."""
        text = str(self.args[0]) if self.args else ""
        return text.split(" ", 1)[0]


class Script:
    """A Lua script known by its SHA1, the name ``EVALSHA`` calls it by."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    @property
    def key(self) -> str:
        """What calls name it: the SHA1."""
        return self.sha

    def command(self, keys: Sequence[Arg], args: Sequence[Arg]) -> tuple[Arg, ...]:
        """The ``EVALSHA`` command running this script, for :meth:`RedisConn.pipeline`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def load(self) -> tuple[Arg, ...]:
        """The command that loads it."""
        return ("SCRIPT", "LOAD", self.source)


class Function:
    """A Redis Functions library (Redis >= 7) whose one function shares its ``name``.

    ``source`` must start ``#!lua name=<name>`` and register the function ``<name>``. Loaded
    once, the library's top level runs once, while ``EVALSHA`` runs a script's whole body on
    every call; choose a name per version of the code (old versions stay loaded, unused).
    """

    __slots__ = ("name", "source")

    def __init__(self, name: str, source: str) -> None:
        if not source.startswith(f"#!lua name={name}\n"):
            raise ValueError(f"a function library's source must start with '#!lua name={name}'")
        self.name = name
        self.source = source

    @property
    def key(self) -> str:
        """What calls name it: the function's name."""
        return self.name

    def command(self, keys: Sequence[Arg], args: Sequence[Arg]) -> tuple[Arg, ...]:
        """The ``FCALL`` command running this function, for :meth:`RedisConn.pipeline`."""
        return ("FCALL", self.name, len(keys), *keys, *args)

    def load(self) -> tuple[Arg, ...]:
        """The command that loads (or reloads) the library."""
        return ("FUNCTION", "LOAD", "REPLACE", self.source)


S = TypeVar("S", bound=Script | Function)


class RedisConn:
    """One connection to a Redis server, shared by tasks (see the module docstring).

    Args:
        host, port: where the server listens.
        db: the database number (``SELECT``ed on every connect).
        password: sent with ``AUTH`` on every connect if given.
        connect_timeout: seconds a connect (with ``AUTH``/``SELECT``) may take.
        timeout: seconds a round trip may wait for its replies (None waits forever).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.db = db
        self.password = password
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader = _new_reader()
        # A semaphore, not a Lock: a call begun in one task (begin) may be finished by another.
        self._lock = trio.Semaphore(1)
        self._scripts: dict[str, Script | Function] = {}

    @property
    def address(self) -> str:
        """``host:port``, as error messages name the server."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while a connection is open (it may still turn out broken on the next call)."""
        return self._sock is not None

    # --- public calls -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect now instead of on the first call (a no-op if connected).

        Raises:
            RedisUnavailable: the server cannot be reached in ``connect_timeout``.
            RedisReplyError: ``AUTH`` or ``SELECT`` was refused.
        """
        async with self._lock:
            await self._ensure()

    async def execute(self, *args: Arg) -> Any:
        """Run one command and return its reply.

        Raises:
            RedisUnavailable: the server cannot be reached or did not answer in time.
            RedisReplyError: Redis answered with an error.
        """
        return (await self.pipeline([args]))[0]

    async def pipeline(
        self,
        commands: Sequence[Command],
        *,
        raise_errors: bool = True,
        while_waiting: Callable[[], object] | None = None,
    ) -> list[Any]:
        """Run ``commands`` in one round trip and return their replies, in order.

        Args:
            commands: the commands; ``EVALSHA`` of a registered :class:`Script` (``FCALL`` of
                a registered :class:`Function`) is loaded and re-sent if the server lacks it.
            raise_errors: raise the first error reply (after reading every reply); if False,
                error replies are returned in the list as :class:`RedisReplyError` values.
            while_waiting: called once the commands are sent, before waiting for the replies:
                the caller's own work then overlaps the server's (an exception from it drops
                the connection, as a cancel does, and propagates).

        Raises:
            RedisUnavailable: the server cannot be reached or did not answer in time (the
                connection is dropped; the next call reconnects).
            RedisReplyError: an error reply, if ``raise_errors``.
        """
        if not commands:
            return []
        await self._acquire()
        return await self._complete(commands, None, raise_errors, while_waiting)

    def begin(self, commands: Sequence[Command]) -> Flight | None:
        """Send ``commands`` now, from synchronous code, if the connection is open and free.

        The caller then owes :meth:`finish` of the flight returned, which reads the replies and
        frees the connection (other calls wait until then). None, with nothing sent, if the
        connection is not open, is in use or turned out broken: use :meth:`pipeline` instead.
        """
        sock = self._sock
        if sock is None or not commands:
            return None
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            return None
        request = _pack(commands)
        try:
            sent = _send_some(sock, request)
        except OSError:
            self._drop()
            self._lock.release()
            return None
        return Flight(tuple(commands), memoryview(request)[sent:])

    async def finish(self, flight: Flight, *, raise_errors: bool = True) -> list[Any]:
        """The replies of a call :meth:`begin` sent, as :meth:`pipeline` returns them.

        Raises:
            RedisUnavailable, RedisReplyError: as :meth:`pipeline`.
        """
        return await self._complete(flight.commands, flight, raise_errors, None)

    async def _complete(
        self,
        commands: Sequence[Command],
        flight: Flight | None,
        raise_errors: bool,
        while_waiting: Callable[[], object] | None,
    ) -> list[Any]:
        """Read the replies of ``commands`` (sending them first unless ``flight`` did), load and
        send again those whose script the server lacked, then free the connection."""
        try:
            replies = await self._roundtrip(commands, while_waiting, flight)
            missing = [i for i, r in enumerate(replies) if self._reloadable(commands[i], r)]
            if missing:
                keys = list(dict.fromkeys(str(commands[i][1]) for i in missing))
                loads = [self._scripts[key].load() for key in keys]
                loaded = await self._roundtrip(loads)
                for reply in loaded:
                    if isinstance(reply, RedisReplyError):
                        raise reply
                again = await self._roundtrip([commands[i] for i in missing])
                for i, reply in zip(missing, again):
                    replies[i] = reply
        finally:
            self._lock.release()
        if raise_errors:
            for reply in replies:
                if isinstance(reply, RedisReplyError):
                    raise reply
        return replies

    def register(self, script: S) -> S:
        """Let this connection load ``script`` when a call of it finds the server without it."""
        self._scripts[script.key] = script
        return script

    async def evalsha(self, script: Script, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Any:
        """Run ``script`` by its SHA (loading it first if the server lacks it); return its reply.

        Raises:
            RedisUnavailable: as :meth:`execute`.
            RedisReplyError: the script failed or returned an error.
        """
        self.register(script)
        return (await self.pipeline([script.command(keys, args)]))[0]

    def abort(self) -> None:
        """Drop the connection now, from any task: a call waiting on it fails at once with
        :class:`RedisUnavailable` (a watchdog's way out of a call made without ``timeout``)."""
        self._drop()

    async def aclose(self) -> None:
        """Close the connection (a later call opens a new one)."""
        async with self._lock:
            self._drop()

    # --- internals -------------------------------------------------------------------------------

    def _reloadable(self, command: Command, reply: Any) -> bool:
        if not isinstance(reply, RedisReplyError) or len(command) < 2 or str(command[1]) not in self._scripts:
            return False
        name = str(command[0]).upper()
        if name == "EVALSHA":
            return reply.code == "NOSCRIPT"
        return name == "FCALL" and str(reply).startswith("ERR Function not found")

    async def _acquire(self) -> None:
        """Take the lock; a cancel point, and a schedule point only if another task holds it."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    def _drop(self) -> None:
        """Forget the connection at once (no await: safe while being cancelled)."""
        sock, self._sock = self._sock, None
        self._reader = _new_reader()
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def _ensure(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        hello: list[tuple[Arg, ...]] = []
        if self.password is not None:
            hello.append(("AUTH", self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(self.host, self.port)
                self._sock = sock = socket.socket(fileno=stream.socket.detach())
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                replies = await self._exchange(sock, hello) if hello else []
        except trio.TooSlowError:
            self._drop()
            raise RedisUnavailable(
                f"redis at {self.address}: no connection within {self.connect_timeout:g}s; "
                "check that the server is up and reachable"
            ) from None
        except OSError as e:
            self._drop()
            raise RedisUnavailable(
                f"redis at {self.address} is unreachable ({_reason(e)}); start redis-server or fix host/port"
            ) from None
        except BaseException:
            self._drop()
            raise
        for command, reply in zip(hello, replies):
            if isinstance(reply, RedisReplyError):
                self._drop()
                name = "AUTH" if command[0] == "AUTH" else "SELECT"
                raise RedisReplyError(f"{reply} (redis at {self.address} refused {name})")
        return sock

    async def _roundtrip(
        self,
        commands: Sequence[Command],
        while_waiting: Callable[[], object] | None = None,
        flight: Flight | None = None,
    ) -> list[Any]:
        sock = self._sock
        if sock is None:
            sock = await self._ensure()  # never for a flight: begin() needs an open connection
        try:
            if flight is None:  # sent before the timeout's cancel scope is entered (it costs)
                request = _pack(commands)
                flight = Flight(tuple(commands), memoryview(request)[_send_some(sock, request) :])
            if self.timeout is None:
                return await self._exchange(sock, commands, while_waiting, flight)
            with trio.fail_after(self.timeout):
                return await self._exchange(sock, commands, while_waiting, flight)
        except trio.TooSlowError:
            self._drop()
            raise RedisUnavailable(
                f"redis at {self.address}: no reply within {self.timeout:g}s; the connection was dropped"
            ) from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, hiredis.ProtocolError) as e:
            self._drop()
            raise RedisUnavailable(f"redis at {self.address}: connection lost ({_reason(e)})") from None
        except BaseException:
            self._drop()  # cancelled mid-call: unread replies would answer the next call
            raise

    async def _exchange(
        self,
        sock: socket.socket,
        commands: Sequence[Command],
        while_waiting: Callable[[], object] | None = None,
        flight: Flight | None = None,
    ) -> list[Any]:
        """Send ``commands`` (the rest of them, for a ``flight``), call ``while_waiting`` and read
        the replies, yielding to trio once if nothing blocks."""
        if flight is None:
            request = _pack(commands)
            view = memoryview(request)[_send_some(sock, request) :]
        else:
            view = flight.unsent
        while view:
            await trio.lowlevel.wait_writable(sock)
            view = view[_send_some(sock, view) :]
        if while_waiting is not None:
            while_waiting()
        reader = self._reader
        replies: list[Any] = []
        wanted = len(commands)
        waited = False
        while len(replies) < wanted:
            reply = reader.gets()
            if reply is not False:
                replies.append(reply)
                continue
            if not waited:  # the reply cannot be back yet: this wait is the call's one yield
                await trio.lowlevel.wait_readable(sock)
                waited = True
            while True:
                try:
                    data = sock.recv(_READ_SIZE)
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
            if not data:
                raise ConnectionResetError("closed by the server")
            reader.feed(data)
        return replies


class Flight:
    """Commands :meth:`RedisConn.begin` sent (all but ``unsent``), owed a :meth:`RedisConn.finish`."""

    __slots__ = ("commands", "unsent")

    def __init__(self, commands: tuple[Command, ...], unsent: memoryview) -> None:
        self.commands = commands
        self.unsent = unsent


def _pack(commands: Sequence[Command]) -> bytes:
    # hiredis' stub types pack_command's argument as a 1-tuple; any length works.
    pack: Any = hiredis.pack_command
    if len(commands) == 1:
        request: bytes = pack(tuple(commands[0]))
        return request
    return b"".join([pack(tuple(c)) for c in commands])


def _new_reader() -> hiredis.Reader:
    return hiredis.Reader(replyError=RedisReplyError)


def _send_some(sock: socket.socket, data: bytes | memoryview) -> int:
    """Send what the kernel takes now (0 if its buffer is full), without blocking."""
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def _reason(e: BaseException) -> str:
    """Why a socket call failed, in a few words ("Connection refused")."""
    cause = e.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        e = cause.exceptions[0]
    errno = getattr(e, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    text = " ".join(str(e).split())
    return text or type(e).__name__
