"""The codec: round trips, and one clear error for every class of malformed input."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ActorRef, message
from actors.heartbeat import Ping, Status
from transport import codec
from transport.codec import CodecError


@message("test.Inner")
@dataclass(frozen=True, slots=True)
class Inner:
    n: int
    tags: tuple[str, ...]


@message("test.Everything")
@dataclass(frozen=True, slots=True)
class Everything:
    i: int
    f: float
    s: str
    b: bytes
    flag: bool
    maybe: int | None
    pair: tuple[int, str]
    items: list[int]
    table: dict[str, float]
    inner: Inner
    who: ActorRef
    payload: Any


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.floats(allow_nan=False),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=8,
)
finite = st.floats(allow_nan=False)
everything = st.builds(
    Everything,
    i=st.integers(-(2**63), 2**64 - 1),
    f=finite,
    s=st.text(),
    b=st.binary(),
    flag=st.booleans(),
    maybe=st.none() | st.integers(-1000, 1000),
    pair=st.tuples(st.integers(0, 10), st.text(max_size=3)),
    items=st.lists(st.integers(-5, 5), max_size=5),
    table=st.dictionaries(st.text(max_size=4), finite, max_size=4),
    inner=st.builds(Inner, n=st.integers(0, 9), tags=st.lists(st.text(max_size=3), max_size=3).map(tuple)),
    who=st.builds(ActorRef, st.text(min_size=1, max_size=4), st.text(min_size=1, max_size=4)),
    payload=plain,
)


@given(everything)
def test_every_field_type_round_trips(msg: Everything) -> None:
    assert codec.decode(codec.encode(msg)) == msg


@given(everything, st.text(max_size=5), st.text(max_size=5))
def test_envelope_round_trips(msg: Everything, a: str, b: str) -> None:
    src, dst = ActorRef(a, "x"), ActorRef(b, "y")
    assert codec.decode_envelope(codec.encode_envelope(src, dst, msg)) == (src, dst, msg)


def test_ints_widen_to_float_fields() -> None:
    assert codec.decode(codec.encode(Ping(3))) == Ping(3.0)
    assert type(codec.decode(codec.encode(Ping(3))).sent_at) is float


def test_oversized_frame_is_refused() -> None:
    data = codec.encode(Status({f"n{i}": "ALIVE" for i in range(100)}))
    with pytest.raises(CodecError, match="exceeds the 64-byte limit"):
        codec.decode(data, max_size=64)


def test_every_truncation_is_a_codec_error() -> None:
    data = codec.encode_envelope(ActorRef("n1", "a"), ActorRef("n2", "b"), Status({"n3": "DEAD"}))
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            codec.decode_envelope(data[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(CodecError, match="trailing bytes"):
        codec.decode(codec.encode(Ping(1.0)) + b"\x00")


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (["no.Such", 1], "unknown message type 'no.Such'"),
        ([17, 1], "unknown message type 17"),
        ([], "expected a message array"),
        ({"sent_at": 1.0}, "expected a message array"),
        (["heartbeat.Ping"], "expected 1 fields, got 0"),
        (["heartbeat.Ping", 1.0, 2.0], "expected 1 fields, got 2"),
        (["heartbeat.Ping", "soon"], "heartbeat.Ping.sent_at: expected float, got str"),
        (["heartbeat.Ping", None], "expected float, got NoneType"),
        (["heartbeat.Status", {"n1": 3}], "expected str, got int"),
        (["heartbeat.Status", [["n1", "ALIVE"]]], "expected map, got list"),
        (["test.Inner", True, []], "test.Inner.n: expected int, got bool"),
        (["test.Inner", 1, ["a", 2]], r"tags\[1\]: expected str, got int"),
    ],
)
def test_wrong_shapes_and_types_name_the_problem(wire: Any, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codec.decode(msgpack.packb(wire))


def test_nested_message_of_the_wrong_type_is_refused() -> None:
    good = codec.to_wire(
        Everything(1, 1.0, "", b"", True, None, (1, ""), [], {}, Inner(1, ()), ActorRef("a", "b"), None)
    )
    good[11] = ["test.Inner", 1, []]  # the ActorRef field
    with pytest.raises(CodecError, match=r"expected troupe\.ActorRef, got test\.Inner"):
        codec.decode(msgpack.packb(good))


def test_envelope_shape_is_checked() -> None:
    with pytest.raises(CodecError, match="array of 5"):
        codec.decode_envelope(msgpack.packb(["n1", "a", "n2"]))
    with pytest.raises(CodecError, match="source node must be str"):
        codec.decode_envelope(msgpack.packb([1, "a", "n2", "b", ["heartbeat.Ping", 1.0]]))


def test_unregistered_or_unencodable_messages_are_codec_errors() -> None:
    @dataclass(frozen=True, slots=True)
    class Loose:
        x: int

    with pytest.raises(CodecError, match="not a registered message"):
        codec.encode(Loose(1))
    with pytest.raises(CodecError, match="cannot encode"):
        codec.encode(
            Everything(1, 1.0, "", b"", True, None, (1, ""), [], {}, Inner(1, ()), ActorRef("a", "b"), {1, 2})
        )


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_codec_errors(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.decode_envelope(data)


@given(st.lists(st.binary(max_size=40), max_size=6), st.data())
def test_frame_reader_reassembles_any_split(bodies: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(codec.frame(b) for b in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = codec.FrameReader()
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += reader.feed(stream[prev:cut])
        prev = cut
    assert out == bodies
    assert reader.pending == 0


def test_frame_reader_refuses_an_oversized_length_prefix() -> None:
    reader = codec.FrameReader(max_size=1024)
    with pytest.raises(CodecError, match="exceeds the 1024-byte limit"):
        reader.feed((5000).to_bytes(4, "big") + b"xx")


@message("test.Checked")
@dataclass(frozen=True, slots=True)
class Checked:
    percent: int

    def __post_init__(self) -> None:
        if not 0 <= self.percent <= 100:
            raise ValueError(f"percent must be 0..100, got {self.percent}")


def test_a_message_that_refuses_its_own_values_is_a_codec_error() -> None:
    assert codec.decode(codec.encode(Checked(50))) == Checked(50)
    with pytest.raises(CodecError, match=r"test\.Checked: percent must be 0\.\.100, got 500"):
        codec.decode(msgpack.packb(["test.Checked", 500]))
