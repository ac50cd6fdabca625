"""Job processors: user ``async def`` functions registered by job type, and loading user modules.

How it works
------------
A processor is ``async def process(payload) -> result``; the node's worker pool runs the one
registered under a job's ``type`` (see :class:`transport.runtime.NodeRuntime`) under the job's
timeout: a processor that raises fails the attempt (the error text is recorded and the job is
retried with backoff or goes to the dead-letter queue), one that runs past its timeout is
cancelled and fails with ``timed out after N s``. Register with the decorator or the function::

    from transport.processors import processor, register

    @processor("email")
    async def send_email(payload):
        await trio.sleep(0.1)
        return {"sent_to": payload["to"]}

    register("resize", resize_image)

``troupe node --jobs-module mypkg.jobs,./more_jobs.py`` (``JOB_MODULES``) imports each module
(a dotted module name, or a ``.py`` file path) before the node starts, so the decorators in it
run; the node then serves every processor in :func:`registry`. A module that cannot be imported
or a processor that is not an ``async def`` is reported as one :class:`ProcessorError` line.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .runtime import Processor

P = TypeVar("P", bound=Callable[..., Any])


class ProcessorError(ValueError):
    """A processor or a jobs module that cannot be used (one-line message saying why)."""


def _describe(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{module}.{name}"


def _is_async(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class Registry:
    """Processors by job type (see the module docstring)."""

    def __init__(self) -> None:
        self._procs: dict[str, Processor] = {}

    def register(self, name: str, fn: Processor, *, replace: bool = False) -> Processor:
        """Serve jobs of type ``name`` with ``fn``; returns ``fn``.

        Registering the same function again (same module and name, as when a notebook cell or
        a module is run twice) replaces it silently.

        Raises:
            ProcessorError: ``name`` is empty, ``fn`` is not an ``async def``, or another
                function already serves ``name`` and ``replace`` is False.
        """
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ProcessorError(f"processor name {name!r}: use a non-empty job type such as 'email'")
        if not _is_async(fn):
            raise ProcessorError(
                f"processor {name!r}: {_describe(fn)} is not an async function; define it with 'async def'"
            )
        old = self._procs.get(name)
        if old is not None and not replace and _describe(old) != _describe(fn):
            raise ProcessorError(
                f"processor {name!r} is already registered by {_describe(old)}; "
                "pick another job type or pass replace=True"
            )
        self._procs[name] = fn
        return fn

    def processor(self, name: str) -> Callable[[P], P]:
        """Decorator form of :meth:`register`."""

        def wrap(fn: P) -> P:
            self.register(name, fn)
            return fn

        return wrap

    def unregister(self, name: str) -> None:
        """Stop serving ``name`` (no error if it was not registered)."""
        self._procs.pop(name, None)

    def snapshot(self) -> dict[str, Processor]:
        """A copy of the registered processors by job type."""
        return dict(self._procs)

    def __contains__(self, name: object) -> bool:
        return name in self._procs

    def __len__(self) -> int:
        return len(self._procs)


DEFAULT = Registry()
"""The registry ``troupe node`` serves; the module-level functions use it."""


def processor(name: str) -> Callable[[P], P]:
    """Register the decorated ``async def`` as the processor of job type ``name``."""
    return DEFAULT.processor(name)


def register(name: str, fn: Processor, *, replace: bool = False) -> Processor:
    """Register ``fn`` (an ``async def``) as the processor of job type ``name``; returns ``fn``.

    Raises:
        ProcessorError: see :meth:`Registry.register`.
    """
    return DEFAULT.register(name, fn, replace=replace)


def registry() -> dict[str, Processor]:
    """Every processor registered so far, by job type (a copy)."""
    return DEFAULT.snapshot()


def split_modules(spec: str | Iterable[str] | None) -> list[str]:
    """``"a.b, ./c.py"`` or a list of such strings -> ``["a.b", "./c.py"]`` (empty parts dropped)."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, str) else list(spec)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _looks_like_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name or "\\" in name


def load_module(name: str, what: str = "JOB_MODULES") -> Any:
    """Import one jobs module: a dotted name (``mypkg.jobs``) or a file path (``./jobs.py``).

    Raises:
        ProcessorError: it cannot be found or imported, or registering in it failed (one line
            naming ``what``, the module and the cause).
    """
    try:
        if _looks_like_path(name):
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise ProcessorError(f"{what}: no such file {name!r}")
            mod_name = f"troupe_jobs_{path.stem}_{zlib.crc32(str(path).encode()):08x}"
            if mod_name in sys.modules:
                return sys.modules[mod_name]
            spec = importlib.util.spec_from_file_location(mod_name, path)
            if spec is None or spec.loader is None:
                raise ProcessorError(f"{what}: cannot load {name!r} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(mod_name, None)
                raise
            return module
        return importlib.import_module(name)
    except ProcessorError as e:
        if str(e).startswith(what):
            raise
        raise ProcessorError(f"{what}: {name!r}: {e}") from None
    except ModuleNotFoundError as e:
        raise ProcessorError(
            f"{what}: cannot import {name!r}: {e}; give an importable module name or a .py file path"
        ) from None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ProcessorError(f"{what}: importing {name!r} failed: {type(e).__name__}: {first}") from None


def load_modules(spec: str | Iterable[str] | None, what: str = "JOB_MODULES") -> list[str]:
    """Import every jobs module named in ``spec`` (see :func:`split_modules`); returns their names.

    Raises:
        ProcessorError: the first module that cannot be imported (one line).
    """
    names = split_modules(spec)
    for name in names:
        load_module(name, what)
    return names
