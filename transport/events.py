"""Structured events: what actors ``emit`` and what the runtime reports, as JSON lines.

An :class:`EventLog` turns each event into one flat dict::

    {"time": 1732330000.123, "mono": 812.5, "node": "n1", "actor": "heartbeat",
     "kind": "peer.dead", "peer": "n3", "silence": 1.2}

Printed as JSON (``LOG_JSON=1``), each line also has ``level`` (``info`` unless the event gives
one) and, for ``job.*`` events, ``job_id``.

and (1) appends it to ``records`` (for tests), (2) calls every subscriber, (3) writes it as one
JSON line to ``stream`` (stdout for ``troupe node --log-json``) when a stream is given, or as a
short human line when ``json_lines`` is False. Field values that JSON cannot hold are written
with ``repr``. Runtime diagnostics (dropped messages, handler errors) are events too, with
kinds under ``runtime.`` / ``tcp.`` and a ``level`` field, so one stream tells the whole story.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import trio

Record = dict[str, Any]
Subscriber = Callable[[Record], None]


def _now_mono() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside trio.run
        return time.monotonic()


class EventLog:
    """Collects, forwards and prints structured events.

    Args:
        stream: where to write lines (None: keep in memory only).
        json_lines: one JSON object per line (True) or a short human-readable line (False).
        keep: how many records to keep in ``records`` (oldest dropped; 0 keeps none).
    """

    def __init__(self, stream: TextIO | None = None, *, json_lines: bool = True, keep: int = 100_000):
        self.stream = stream
        self.json_lines = json_lines
        self.keep = keep
        self.records: list[Record] = []
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(record)`` for every later event (exceptions in ``fn`` propagate)."""
        self._subscribers.append(fn)

    def emit(self, node: str, actor: str, kind: str, fields: dict[str, Any] | None = None) -> Record:
        """Record one event and return it.

        Args:
            node: the node id.
            actor: the actor name ("" for the runtime or a transport).
            kind: a dotted kind such as ``peer.dead``.
            fields: plain scalar fields; they must not use the names above.
        """
        return self._emit(node, actor, kind, fields, write=True)

    def notify(self, node: str, actor: str, kind: str, fields: dict[str, Any] | None = None) -> Record:
        """As :meth:`emit`, but never printed: only kept and given to subscribers."""
        return self._emit(node, actor, kind, fields, write=False)

    @property
    def subscribed(self) -> bool:
        """True if anyone subscribed (metrics, records)."""
        return bool(self._subscribers)

    def _emit(
        self, node: str, actor: str, kind: str, fields: dict[str, Any] | None, *, write: bool
    ) -> Record:
        rec: Record = {
            "time": round(time.time(), 6),
            "mono": round(_now_mono(), 6),
            "node": node,
            "actor": actor,
            "kind": kind,
        }
        if fields:
            for k, v in fields.items():
                rec[k if k not in rec else f"field_{k}"] = v
        if self.keep:
            self.records.append(rec)
            if len(self.records) > self.keep:
                del self.records[: len(self.records) - self.keep]
        for fn in self._subscribers:
            fn(rec)
        if write and self.stream is not None:
            self.stream.write(self.format(rec) + "\n")
            self.stream.flush()
        return rec

    def format(self, rec: Record) -> str:
        """One line for ``rec``: JSON, or ``HH:MM:SS.mmm node actor kind k=v ...``."""
        if self.json_lines:
            return json.dumps(_structured(rec), default=repr, separators=(",", ":"))
        stamp = time.strftime("%H:%M:%S", time.localtime(rec["time"])) + f".{int(rec['time'] % 1 * 1000):03d}"
        extra = " ".join(f"{k}={v}" for k, v in rec.items() if k not in _HEAD)
        return f"{stamp} {rec['node']} {rec['actor'] or '-'} {rec['kind']} {extra}".rstrip()

    def find(self, kind: str, **match: Any) -> list[Record]:
        """Records of ``kind`` whose fields equal every ``match`` item (for tests)."""
        return [r for r in self.records if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]


_HEAD = frozenset({"time", "mono", "node", "actor", "kind"})


def _structured(rec: Record) -> Record:
    """``rec`` as a log line: with a ``level`` (``info`` unless given) and, for ``job.*``
    events, the job's id as ``job_id`` too, so log tools can filter by node and by job."""
    out = rec if "level" in rec else {**rec, "level": "info"}
    if "job_id" not in out and "id" in out and str(out["kind"]).startswith("job."):
        out = {**out, "job_id": out["id"]}
    return out


def stdout_log(json_lines: bool) -> EventLog:
    """An :class:`EventLog` writing to stdout that keeps only a few records."""
    return EventLog(sys.stdout, json_lines=json_lines, keep=1000)
