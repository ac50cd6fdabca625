"""Messages: frozen, slotted dataclasses registered under a stable wire tag.

Every message an actor sends is declared like this::

    @message("heartbeat.Ping")
    @dataclass(frozen=True, slots=True)
    class Ping:
        sent_at: float

The tag is what crosses the wire (see ``transport.codec``), so it must stay stable across
versions; renaming the Python class is harmless, renaming the tag is a protocol change.
Registration only records the class: field types are resolved lazily by the codec, which
uses them to check every decoded frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Tag -> class and class -> tag. Filled at import time of each actor module.
_BY_TAG: dict[str, type[Any]] = {}
_BY_CLASS: dict[type[Any], str] = {}


class RegistrationError(TypeError):
    """A class given to :func:`message` is not a frozen, slotted dataclass, or its tag is taken."""


def message(tag: str) -> Callable[[type[T]], type[T]]:
    """Register a frozen, slotted dataclass as a message under ``tag``.

    Args:
        tag: the stable wire name, conventionally ``"<area>.<Name>"``.

    Raises:
        RegistrationError: the class is not a frozen slotted dataclass, or ``tag`` is
            already registered to another class.
    """

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise RegistrationError(f"{cls.__qualname__}: messages must be dataclasses")
        params = getattr(cls, "__dataclass_params__")  # noqa: B009 (not in type[T])
        if not params.frozen:
            raise RegistrationError(f"{cls.__qualname__}: messages must be frozen dataclasses")
        if "__slots__" not in cls.__dict__:
            raise RegistrationError(f"{cls.__qualname__}: messages must use slots=True")
        owner = _BY_TAG.get(tag)
        if owner is not None and owner.__qualname__ != cls.__qualname__:
            raise RegistrationError(f"message tag {tag!r} already used by {owner.__qualname__}")
        _BY_TAG[tag] = cls
        _BY_CLASS[cls] = tag
        return cls

    return register


def tag_of(cls: type[Any]) -> str:
    """The wire tag of a registered message class (KeyError if unregistered)."""
    return _BY_CLASS[cls]


def class_of(tag: str) -> type[Any] | None:
    """The message class registered under ``tag``, or None."""
    return _BY_TAG.get(tag)


def is_message(obj: object) -> bool:
    """True if ``obj`` is an instance of a registered message class."""
    return type(obj) in _BY_CLASS


def registered() -> dict[str, type[Any]]:
    """A copy of the tag -> class registry (for tools and tests)."""
    return dict(_BY_TAG)


@message("troupe.ActorRef")
@dataclass(frozen=True, slots=True, init=False)
class ActorRef:
    """The address of an actor: the node it lives on and its name there."""

    node: str
    name: str

    def __init__(self, node: str, name: str) -> None:
        # Built for every decoded envelope: set the slots directly rather than through the
        # frozen dataclass's ``object.__setattr__`` (same trick as ``Send``, see ``_effects``).
        _set_ref_node(self, node)
        _set_ref_name(self, name)

    def __str__(self) -> str:
        return f"{self.name}@{self.node}"


_set_ref_node = ActorRef.__dict__["node"].__set__
_set_ref_name = ActorRef.__dict__["name"].__set__
