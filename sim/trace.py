"""The trace: every event of a run, in order, and the SHA-256 that identifies the run.

How it works
------------
During a run the simulator appends plain data to ``Trace.compact``, the *compact form*, in
which the two records every message makes are as small as they can be:

============= ==========================================================================
send          ``(t, msg_id, src, dst, tag, value)``: ``src``/``dst`` are actor ids and
              ``tag`` a tag id (below), ``value`` the message's field
deliver       ``msg_id``, an int >= 0: delivered at the time of the last time mark, to the
              destination its send record names
time mark     ``~t``, an int < 0 (``t`` is ``~mark``): the time of the deliveries after it
actor id      ``(node, actor)``: defines the next actor id (0, 1, ...), before its first use
tag id        ``(tag,)``: defines the next tag id (0, 1, ...), before its first use
any other     ``(t, kind, node, actor, *details)``, for example ``(t, "drop", ...)``
============= ==========================================================================

``t`` is the true time in integer nanoseconds (the simulator's clock is an int, so nothing
needs rounding). Items tell themselves apart by type: an int; a tuple starting with a string
(an id); a tuple whose second element is an int (a send) or a string (any other record). No
message object is kept: a sent message is recorded as its tag and the value of its field (a
tuple of the values if it has several), read by a C ``attrgetter`` cached per message class
(:func:`message_canon`); a field that is itself a message or an :class:`~actors.ActorRef` is
canonicalised when hashed (wire array, ``"name@node"``). The simulator's send path writes send
records and its fast delivery path deliver ints and time marks; every other record goes
through :meth:`Trace.add`, which counts it, so :meth:`Trace.counts` needs no pass over the
records.

The hash is the SHA-256 of the compact form msgpack-packed in chunks of :data:`CHUNK` items
(one msgpack array per chunk, packed in C), and that stream is byte for byte the ``.msgpack``
trace file, so ``sha256sum trace.msgpack`` equals ``trace_sha256``. Chunk boundaries are fixed
item counts, so when a whole chunk is packed (:meth:`Trace.pack`: the simulator calls it during
a run, :meth:`Trace.sha256` before hashing) changes no byte: the packed bytes are hashed and
kept, the tuples dropped, and a partial last chunk is hashed on a copy of the hash state. Same
run, same compact form, same bytes; the stream decodes back to every record, so the hash
identifies the run.

The *canonical form* of a record, for people and tools, is the list
``[t_ns, kind, node, actor, *details]``, built from the compact form on demand
(:meth:`Trace.iter_canonical`, ``.jsonl`` files, :func:`first_difference`): a message becomes
its wire array ``[tag, field, ...]``, an ActorRef ``"name@node"``, bytes hex in JSON.
:attr:`Trace.records` gives the same records as tuples (messages as ``[tag, field, ...]``).

Record kinds and their details (canonical form):

========== ===========================================================================
send       msg_id, dst_node, dst_actor, message
deliver    msg_id (node and actor are the destination)
duplicate  msg_id
drop       msg_id, reason (loss, partition, crashed, no-actor, codec, job-lost, ...)
hold       msg_id (clogged link) / release: msg_id
timer      key
emit       kind, fields
persist    key / sync: count of keys made durable
spawn      / stop / start: incarnation / crash / restart: incarnation / pause / resume
clock_jump by (seconds)
job.start  job_id, job_type / job.done: job_id, ok / job.cancel: job_id
fault      action, args (network-wide faults: partition, block, heal, clog, set_loss ...)
========== ===========================================================================
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgpack

from actors import ActorRef, class_of, tag_of

CHUNK = 4096
"""Compact items per packed chunk."""
_SCALARS = (str, int, float, bool, type(None), bytes)
_Canon = Callable[[Any], Any]
_CANON: dict[type[Any], _Canon] = {ActorRef: lambda ref: f"{ref.name}@{ref.node}"}


def _no_fields(obj: Any) -> tuple[()]:
    return ()


def message_canon(tp: type[Any]) -> tuple[str, _Canon]:
    """``(tag, value getter)`` of a message class for send records.

    The getter returns the field's value for a one-field message, the tuple of the values
    otherwise. A class that is not a registered message (possible only with codec checks
    off) gets the tag ``""`` and ``repr``.
    """
    try:
        tag = tag_of(tp)
    except KeyError:
        return "", repr
    names = tuple(f.name for f in fields(tp))
    if not names:
        return tag, _no_fields
    return tag, attrgetter(*names)


def _wire(tag: str, value: Any) -> Any:
    """The message of a send record as its wire array ``[tag, field, ...]``."""
    if not tag:
        return value  # not a registered message: its repr
    cls = class_of(tag)
    if cls is not None and len(fields(cls)) == 1:
        return [tag, value]
    return [tag, *value]


def _canon_of(tp: type[Any]) -> _Canon:
    """How to turn an instance of ``tp`` into plain msgpack data (wire array for messages)."""
    canon = _CANON.get(tp)
    if canon is not None:
        return canon
    tag, get = message_canon(tp)
    if not tag:
        canon = repr
    elif get is _no_fields:
        canon = lambda obj: (tag,)  # noqa: E731
    elif len(fields(tp)) == 1:
        canon = lambda obj: (tag, get(obj))  # noqa: E731
    else:
        canon = lambda obj: (tag, *get(obj))  # noqa: E731
    _CANON[tp] = canon
    return canon


def _default(value: Any) -> Any:
    # Called by msgpack's C packer only for what it cannot pack itself (a message or ActorRef
    # inside a field, an odd emit field): one dict lookup in the common case.
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


def _expand(compact: Iterator[Any]) -> Iterator[tuple[Any, ...]]:
    """Compact items as records ``(t, kind, node, actor, *details)`` (messages as wire lists)."""
    actors: list[tuple[str, str]] = []
    tags: list[str] = []
    dst: dict[int, tuple[str, str]] = {}
    mark = 0
    for item in compact:
        if item.__class__ is int:
            if item < 0:
                mark = ~item
            else:
                node, actor = dst[item]
                yield (mark, "deliver", node, actor, item)
        elif item[0].__class__ is str:
            if len(item) == 2:
                actors.append(item)
            else:
                tags.append(item[0])
        elif item[1].__class__ is int:
            t, mid, src, to, tag, value = item
            src_node, src_actor = actors[src]
            dst[mid] = actors[to]
            yield (t, "send", src_node, src_actor, mid, *actors[to], _wire(tags[tag], value))
        else:
            yield item


class Trace:
    """The records of a run in compact form, with their canonical form and hash.

    ``compact`` holds the items not yet packed; whole chunks are packed, hashed and dropped
    from it by :meth:`pack` (the simulator calls it now and then during a run, so a long run
    keeps bytes, not millions of tuples). ``compact`` is never replaced, so the simulator may
    hold its ``append``. ``marks`` and ``fast`` count the time marks and the deliver ints
    written so far; the simulator's delivery loop keeps them up to date (and ``mark``, the
    last time mark).
    """

    __slots__ = (
        "compact",
        "marks",
        "fast",
        "mark",
        "_chunks",
        "_ids",
        "_tags",
        "_added",
        "_hash",
        "_pack",
    )

    def __init__(self) -> None:
        self.compact: list[Any] = []
        self.marks = 0
        self.fast = 0
        self.mark = -1
        self._chunks: list[bytes] = []
        self._ids: dict[tuple[str, str], int] = {}
        self._tags: dict[str, int] = {}
        self._added: Counter[str] = Counter()
        self._hash = hashlib.sha256()
        self._pack = msgpack.Packer(use_bin_type=True, default=_default).pack

    def __len__(self) -> int:
        """The number of records (time marks and id definitions are not records)."""
        items = len(self._chunks) * CHUNK + len(self.compact)
        return items - self.marks - len(self._ids) - len(self._tags)

    def pack(self) -> None:
        """Pack, hash and drop every whole chunk of ``compact``."""
        compact = self.compact
        whole = len(compact) // CHUNK * CHUNK
        if not whole:
            return
        pack = self._pack
        update = self._hash.update
        chunks = self._chunks
        for i in range(0, whole, CHUNK):
            chunk = pack(compact[i : i + CHUNK])
            update(chunk)
            chunks.append(chunk)
        del compact[:whole]

    def actor_id(self, node: str, actor: str) -> int:
        """The id of the actor address ``(node, actor)`` in send records (defined on first use)."""
        key = (node, actor)
        tid = self._ids.get(key)
        if tid is None:
            tid = self._ids[key] = len(self._ids)
            self.compact.append(key)
        return tid

    def tag_id(self, tag: str) -> int:
        """The id of the message tag ``tag`` in send records (defined on first use)."""
        tid = self._tags.get(tag)
        if tid is None:
            tid = self._tags[tag] = len(self._tags)
            self.compact.append((tag,))
        return tid

    def add(self, kind: str, t: int, node: str, actor: str, *details: Any) -> None:
        """Append a record of ``kind`` (any kind but send)."""
        self.compact.append((t, kind, node, actor, *details))
        self._added[kind] += 1

    def _items(self) -> Iterator[Any]:
        """Every compact item so far, packed chunks decoded (arrays as tuples)."""
        for chunk in self._chunks:
            yield from msgpack.unpackb(chunk, use_list=False, raw=False, strict_map_key=False)
        yield from list(self.compact)

    @property
    def records(self) -> list[tuple[Any, ...]]:
        """Every record as ``(t, kind, node, actor, *details)`` (built on each call; values as
        plain data once packed: a nested message as its wire array, an ActorRef as a string)."""
        return list(_expand(self._items()))

    def canonical(self, index: int) -> list[Any]:
        """Record ``index`` in canonical form (plain lists, strings and numbers)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        return next(self.iter_canonical(index))

    def iter_canonical(self, start: int = 0) -> Iterator[list[Any]]:
        """Every record from ``start`` on, in canonical form."""
        for rec in islice(_expand(self._items()), start, None):
            yield _plain(rec)  # a tuple: _plain makes it a list

    def _tail(self) -> Iterator[bytes]:
        pack = self._pack
        compact = self.compact
        for i in range(0, len(compact), CHUNK):
            yield pack(compact[i : i + CHUNK])

    def sha256(self) -> str:
        """SHA-256 (hex) of the msgpack stream of the records so far (see module docstring)."""
        self.pack()
        h = self._hash.copy()  # the partial tail is hashed on a copy: it may still grow
        for chunk in self._tail():
            h.update(chunk)
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Number of records per kind, sorted by kind."""
        counts = Counter(self._added)
        counts["deliver"] += self.fast
        counts["send"] += len(self) - self.fast - sum(self._added.values())
        return dict(sorted((kind, n) for kind, n in counts.items() if n))

    def write(self, path: str | Path) -> None:
        """Write the records to ``path``: ``.jsonl`` as JSON lines, else the msgpack stream."""
        p = Path(path)
        if p.suffix == ".jsonl":
            with p.open("w", encoding="utf-8") as f:
                for rec in self.iter_canonical():
                    f.write(json.dumps(rec, separators=(",", ":"), default=_json_default))
                    f.write("\n")
            return
        self.pack()
        with p.open("wb") as f:
            for chunk in [*self._chunks, *self._tail()]:
                f.write(chunk)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def first_difference(a: Trace, b: Trace) -> tuple[int, list[Any] | None, list[Any] | None] | None:
    """The index and canonical records where two traces first differ, or None if equal."""
    ia, ib = a.iter_canonical(), b.iter_canonical()
    i = 0
    while True:
        ra, rb = next(ia, None), next(ib, None)
        if ra is None and rb is None:
            return None
        if ra != rb:
            return i, ra, rb
        i += 1
