"""The trace: every event of a run, in order, and the SHA-256 that identifies the run.

How it works
------------
During a run the simulator appends plain tuples ``(t, kind, node, actor, *details)`` to
``Trace.records``: nothing is formatted on the hot path. Message objects are kept as they are.

The canonical form of a record is the list ``[t_ns, kind, node, actor, *details]``: ``t_ns``
is the true time in integer nanoseconds (the simulator's clock is an int, so nothing needs
rounding), every message becomes its wire array ``[tag, field, ...]`` and every
:class:`~actors.ActorRef` becomes ``"name@node"``. Records are msgpack-packed in chunks of
4096 (one msgpack array of records per chunk, packed in C with a conversion hook for
messages); the hash is the SHA-256 of that stream, which is byte for byte the ``.msgpack``
trace file, so ``sha256sum trace.msgpack`` equals ``trace_sha256``. ``.jsonl`` files hold one
canonical record per line (bytes as hex).

Record kinds and their details:

========== ===========================================================================
send       msg_id, dst_node, dst_actor, message
deliver    msg_id (the send record with that id names the source)
duplicate  msg_id
drop       msg_id, reason (loss, partition, crashed, paused?, no-actor, codec, ...)
hold       msg_id (clogged link) / release: msg_id
timer      key
emit       kind, fields
persist    key / sync: count of keys made durable
spawn      / stop / start: incarnation / crash / restart: incarnation / pause / resume
job.start  job_id, job_type / job.done: job_id, ok
fault      action, args (network-wide faults: partition, block, heal, clog, set_loss ...)
========== ===========================================================================
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import msgpack

from actors import ActorRef, tag_of

_CHUNK = 4096
_SCALARS = (str, int, float, bool, type(None), bytes)
_Canon = Callable[[Any], Any]
_CANON: dict[type[Any], _Canon] = {ActorRef: lambda ref: f"{ref.name}@{ref.node}"}


def _canon_of(tp: type[Any]) -> _Canon:
    """How to turn an instance of ``tp`` into plain msgpack data (wire array for messages)."""
    canon = _CANON.get(tp)
    if canon is not None:
        return canon
    if is_message_class(tp):
        tag = tag_of(tp)
        names = tuple(f.name for f in fields(tp))
        if not names:
            canon = lambda obj: (tag,)  # noqa: E731
        elif len(names) == 1:
            name = names[0]
            canon = lambda obj: (tag, getattr(obj, name))  # noqa: E731
        else:
            get = attrgetter(*names)
            canon = lambda obj: (tag, *get(obj))  # noqa: E731
    else:
        canon = repr
    _CANON[tp] = canon
    return canon


def _default(value: Any) -> Any:
    # One dict lookup on the hot path (called by msgpack's C packer for every message).
    try:
        return _CANON[type(value)](value)
    except KeyError:
        return _canon_of(type(value))(value)


def _plain(value: Any) -> Any:
    """``value`` as plain data, recursively (what msgpack sees through ``_default``)."""
    t = type(value)
    if t in _SCALARS:
        return value
    if t is dict:
        return {k: _plain(v) for k, v in value.items()}
    if t in (list, tuple):
        return [_plain(v) for v in value]
    return _plain(_default(value))


def is_message_class(tp: type[Any]) -> bool:
    try:
        tag_of(tp)
    except KeyError:
        return False
    return True


class Trace:
    """An append-only list of event tuples with a canonical, hashable form."""

    __slots__ = ("records", "_hash", "_hashed")

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self._hash = hashlib.sha256()
        self._hashed = 0

    def __len__(self) -> int:
        return len(self.records)

    def canonical(self, index: int) -> list[Any]:
        """Record ``index`` in canonical form (plain lists, strings and numbers)."""
        return _plain(self.records[index])  # type: ignore[no-any-return]

    def iter_canonical(self, start: int = 0) -> Iterator[list[Any]]:
        """Every record from ``start`` on, in canonical form."""
        for rec in self.records[start:]:
            yield _plain(rec)

    def _chunks(self, start: int) -> Iterator[bytes]:
        pack = msgpack.Packer(use_bin_type=True, default=_default).pack
        records = self.records
        for i in range(start, len(records), _CHUNK):
            yield pack(records[i : i + _CHUNK])

    def sha256(self) -> str:
        """SHA-256 (hex) of the msgpack stream of the records so far (see module docstring)."""
        # Only whole chunks are hashed incrementally; a partial tail is hashed on a copy.
        whole = len(self.records) // _CHUNK * _CHUNK
        for i in range(self._hashed, whole, _CHUNK):
            self._hash.update(next(self._chunks(i)))
        self._hashed = max(self._hashed, whole)
        h = self._hash.copy()
        for chunk in self._chunks(self._hashed):
            h.update(chunk)
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Number of records per kind, sorted by kind."""
        counts = Counter(map(itemgetter(1), self.records))
        return dict(sorted(counts.items()))

    def write(self, path: str | Path) -> None:
        """Write the records to ``path``: ``.jsonl`` as JSON lines, else the msgpack stream."""
        p = Path(path)
        if p.suffix == ".jsonl":
            with p.open("w", encoding="utf-8") as f:
                for rec in self.iter_canonical():
                    f.write(json.dumps(rec, separators=(",", ":"), default=_json_default))
                    f.write("\n")
            return
        with p.open("wb") as f:
            for chunk in self._chunks(0):
                f.write(chunk)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def first_difference(a: Trace, b: Trace) -> tuple[int, list[Any] | None, list[Any] | None] | None:
    """The index and canonical records where two traces first differ, or None if equal."""
    n = max(len(a), len(b))
    for i in range(n):
        ra = a.canonical(i) if i < len(a) else None
        rb = b.canonical(i) if i < len(b) else None
        if ra != rb:
            return i, ra, rb
    return None
