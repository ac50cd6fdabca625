"""The codec: the only place where messages become bytes and bytes become messages.

Wire shapes (msgpack):
  - a message is an array ``[tag, field1, field2, ...]`` in dataclass field order; a field
    whose type is itself a message (``ActorRef`` included) nests the same way;
  - an envelope is ``[src_node, src_name, dst_node, dst_name, message]``;
  - on a stream, each frame is a 4-byte big-endian length followed by that many bytes.

Decoding is schema-guided: the field types of the registered dataclass are resolved once and
every decoded value is checked against them (``int``, ``float``, ``str``, ``bytes``, ``bool``,
``None``, unions, ``tuple``, ``list``, ``dict``, nested messages; ``Any`` accepts any plain
msgpack value). Whatever is wrong with a frame, oversize, truncated, trailing bytes, unknown tag,
wrong arity or a field of the wrong type, the one error raised is :class:`CodecError`, whose
message says what was wrong in one line.
"""

from __future__ import annotations

import struct
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

import msgpack

from actors import ActorRef
from actors._messages import class_of, tag_of

DEFAULT_MAX_FRAME = 4 * 1024 * 1024
_LEN = struct.Struct(">I")


class CodecError(ValueError):
    """A frame or message that cannot be encoded or decoded; the message says why."""


Envelope = tuple[ActorRef, ActorRef, Any]
"""(source, destination, message)."""

_Check = Callable[[Any, str], Any]  # (value, path) -> converted value, or raise CodecError


def _fail(path: str, want: str, value: Any) -> CodecError:
    return CodecError(f"field {path}: expected {want}, got {type(value).__name__}")


def _any(v: Any, path: str) -> Any:
    return v


def _int(v: Any, path: str) -> Any:
    if type(v) is int:
        return v
    raise _fail(path, "int", v)


def _float(v: Any, path: str) -> Any:
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    raise _fail(path, "float", v)


def _str(v: Any, path: str) -> Any:
    if type(v) is str:
        return v
    raise _fail(path, "str", v)


def _bytes(v: Any, path: str) -> Any:
    if type(v) is bytes:
        return v
    raise _fail(path, "bytes", v)


def _bool(v: Any, path: str) -> Any:
    if type(v) is bool:
        return v
    raise _fail(path, "bool", v)


def _none(v: Any, path: str) -> Any:
    if v is None:
        return v
    raise _fail(path, "None", v)


_SIMPLE: dict[Any, _Check] = {
    int: _int,
    float: _float,
    str: _str,
    bytes: _bytes,
    bool: _bool,
    type(None): _none,
    None: _none,
    Any: _any,
    object: _any,
}


class _Schema:
    __slots__ = ("cls", "tag", "names", "checks", "nested", "paths", "values")

    def __init__(self, cls: type[Any]):
        self.cls = cls
        self.tag = tag_of(cls)
        hints = typing.get_type_hints(cls)
        self.names = tuple(f.name for f in fields(cls))
        self.checks = tuple(_checker(hints[n]) for n in self.names)
        self.nested = any(_has_message(hints[n]) for n in self.names)
        # Precomputed once (both run for every message): the field paths error messages name,
        # and a C getter of the field values in order (attrgetter of one name returns the bare
        # value, so wrap it to always give a tuple).
        self.paths = tuple(f"{self.tag}.{n}" for n in self.names)
        self.values: Callable[[Any], tuple[Any, ...]]
        if len(self.names) > 1:
            self.values = attrgetter(*self.names)
        elif self.names:
            one = attrgetter(self.names[0])
            self.values = lambda msg: (one(msg),)
        else:
            self.values = lambda msg: ()


_SCHEMAS: dict[type[Any], _Schema] = {}


def _schema(cls: type[Any]) -> _Schema:
    s = _SCHEMAS.get(cls)
    if s is None:
        s = _SCHEMAS[cls] = _Schema(cls)
    return s


def _is_message_class(tp: Any) -> bool:
    return isinstance(tp, type) and class_of(_tag_or_none(tp) or "") is tp


def _tag_or_none(tp: type[Any]) -> str | None:
    try:
        return tag_of(tp)
    except KeyError:
        return None


def _has_message(tp: Any) -> bool:
    if _is_message_class(tp):
        return True
    return any(_has_message(a) for a in typing.get_args(tp) if a is not Ellipsis)


def _checker(tp: Any) -> _Check:
    simple = _SIMPLE.get(tp)
    if simple is not None:
        return simple
    if _is_message_class(tp):
        return lambda v, path: _decode_message(v, path, tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        opts = [_checker(a) for a in args]
        names = " | ".join(getattr(a, "__name__", str(a)) for a in args)

        def union(v: Any, path: str) -> Any:
            for check in opts:
                try:
                    return check(v, path)
                except CodecError:
                    pass
            raise _fail(path, names, v)

        return union
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _checker(args[0])

            def tuple_var(v: Any, path: str) -> Any:
                if type(v) is not list:
                    raise _fail(path, "array", v)
                return tuple(item(x, f"{path}[{i}]") for i, x in enumerate(v))

            return tuple_var
        items = [_checker(a) for a in args]

        def tuple_fixed(v: Any, path: str) -> Any:
            if type(v) is not list or len(v) != len(items):
                raise CodecError(f"field {path}: expected an array of {len(items)}")
            return tuple(c(x, f"{path}[{i}]") for i, (c, x) in enumerate(zip(items, v)))

        return tuple_fixed
    if origin is list:
        item = _checker(args[0]) if args else _any

        def list_(v: Any, path: str) -> Any:
            if type(v) is not list:
                raise _fail(path, "array", v)
            return [item(x, f"{path}[{i}]") for i, x in enumerate(v)]

        return list_
    if origin is dict:
        kc = _checker(args[0]) if args else _any
        vc = _checker(args[1]) if args else _any

        def dict_(v: Any, path: str) -> Any:
            if type(v) is not dict:
                raise _fail(path, "map", v)
            return {kc(k, f"{path}.key"): vc(x, f"{path}[{k!r}]") for k, x in v.items()}

        return dict_
    raise TypeError(f"codec: unsupported field type {tp!r}")


def _decode_message(v: Any, path: str, expect: type[Any] | None = None) -> Any:
    if type(v) is not list or not v:
        raise CodecError(f"{path}: expected a message array, got {type(v).__name__}")
    tag = v[0]
    cls = class_of(tag) if type(tag) is str else None
    if cls is None:
        raise CodecError(f"{path}: unknown message type {tag!r}")
    if expect is not None and cls is not expect:
        raise CodecError(f"{path}: expected {tag_of(expect)}, got {tag}")
    s = _SCHEMAS.get(cls) or _schema(cls)
    if len(v) - 1 != len(s.names):
        raise CodecError(f"{tag}: expected {len(s.names)} fields, got {len(v) - 1}")
    # A class registered under two tags (re-registration) names fields after the tag received.
    paths = s.paths if tag == s.tag else tuple(f"{tag}.{n}" for n in s.names)
    # A plain loop: for the usual one to three fields it is cheaper than a comprehension (one
    # more frame) or zip over a slice, and this runs for every message decoded.
    vals = []
    for i, check in enumerate(s.checks):
        vals.append(check(v[i + 1], paths[i]))
    try:
        return cls(*vals)
    except (ValueError, TypeError) as e:
        # A message that validates its own fields (a job's status, a priority range) refuses
        # values of the right type but not allowed: still a bad frame, so still CodecError.
        raise CodecError(f"{tag}: {e}") from None


def to_wire(msg: Any) -> list[Any]:
    """A message as the plain msgpack array that represents it."""
    try:
        s = _schema(type(msg))
    except KeyError:
        raise CodecError(f"cannot encode {type(msg).__name__}: not a registered message") from None
    if not s.nested:
        return [s.tag, *s.values(msg)]
    return [s.tag, *map(_plain, s.values(msg))]


def _plain(v: Any) -> Any:
    if type(v) in _SCHEMAS or _tag_or_none(type(v)) is not None:
        return to_wire(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def from_wire(obj: Any) -> Any:
    """The message a plain msgpack array represents, checked against its schema."""
    return _decode_message(obj, "message")


class _Packers(threading.local):
    # ``msgpack.packb`` builds a new Packer (and its buffer) per call, which costs more than
    # packing a small message; reuse one per thread instead (a Packer is not thread-safe; it
    # resets its buffer after every pack, including one that raised).
    def __init__(self) -> None:
        self.pack = msgpack.Packer(use_bin_type=True).pack


_PACKERS = _Packers()


def _pack(obj: Any) -> bytes:
    try:
        return _PACKERS.pack(obj)
    except (TypeError, ValueError, OverflowError) as e:
        raise CodecError(f"cannot encode: {e}") from None


def _unpack(data: bytes, max_size: int) -> Any:
    if len(data) > max_size:
        raise CodecError(f"frame of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except msgpack.ExtraData:
        raise CodecError("frame has trailing bytes after its message") from None
    except msgpack.OutOfData:
        raise CodecError("truncated frame") from None
    except (ValueError, TypeError, msgpack.StackError, RecursionError) as e:
        text = str(e)
        if "incomplete input" in text or "exceeds max_" in text:
            raise CodecError("truncated frame") from None
        raise CodecError(f"malformed frame: {text}") from None


def encode(msg: Any) -> bytes:
    """Encode one registered message."""
    return _pack(to_wire(msg))


def decode(data: bytes, max_size: int = DEFAULT_MAX_FRAME) -> Any:
    """Decode one message; raises :class:`CodecError` for anything malformed."""
    return from_wire(_unpack(data, max_size))


def encode_envelope(src: ActorRef, dst: ActorRef, msg: Any) -> bytes:
    """Encode (source, destination, message) as one frame body."""
    return _pack([src.node, src.name, dst.node, dst.name, to_wire(msg)])


def decode_envelope(data: bytes, max_size: int = DEFAULT_MAX_FRAME) -> Envelope:
    """Decode a frame body made by :func:`encode_envelope`."""
    obj = _unpack(data, max_size)
    if type(obj) is not list or len(obj) != 5:
        raise CodecError("envelope: expected an array of 5")
    sn, sa, dn, da, m = obj
    if not (type(sn) is str and type(sa) is str and type(dn) is str and type(da) is str):
        for part, name in (
            (sn, "source node"),
            (sa, "source name"),
            (dn, "target node"),
            (da, "target name"),
        ):
            if type(part) is not str:
                raise CodecError(f"envelope: {name} must be str, got {type(part).__name__}")
    return ActorRef(sn, sa), ActorRef(dn, da), _decode_message(m, "message")


def frame(body: bytes) -> bytes:
    """Prefix ``body`` with its 4-byte big-endian length."""
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into length-prefixed frame bodies.

    ``feed`` returns the complete bodies received so far; a declared length over
    ``max_size`` raises :class:`CodecError` (the stream cannot be resynchronised after it,
    so the caller drops the connection).
    """

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME):
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if size > self.max_size:
                raise CodecError(f"frame of {size} bytes exceeds the {self.max_size}-byte limit")
            if n - pos - 4 < size:
                break
            out.append(bytes(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)
