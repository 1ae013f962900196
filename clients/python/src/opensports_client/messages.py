"""Server -> client messages (PROTOCOL.md section 2.2), as typed dataclasses.

The JSON Schema of every message is ``clients/schema/opensports.schema.json`` (``$defs/ServerMsg``),
generated from the server's own types. Fields the client does not know are ignored, as the
protocol asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union

OpId = Union[int, str, None]


@dataclass(frozen=True)
class Publication:
    """``msg`` (live) or ``snapshot`` (the latest value, after subscribing or after ``lagged``)."""

    topic: str
    seq: int
    ts: int
    """Source time of the event that caused it, microseconds since the Unix epoch."""
    data: Any
    snapshot: bool = False


@dataclass(frozen=True)
class Reset:
    """The ``since`` asked for is gone from the server's history: a snapshot follows."""

    topic: str


@dataclass(frozen=True)
class Lagged:
    """The queue overflowed; ``dropped`` messages were skipped and snapshots follow."""

    dropped: int


@dataclass(frozen=True)
class Subscribed:
    topics: list[str]
    id: OpId = None


@dataclass(frozen=True)
class Unsubscribed:
    topics: list[str]
    id: OpId = None


@dataclass(frozen=True)
class Pong:
    id: OpId = None


@dataclass(frozen=True)
class Error:
    """A refused op (PROTOCOL.md section 2.4); ``id`` is the op's, when it had one."""

    code: str
    message: str
    id: OpId = None


ServerMsg = Union[Publication, Reset, Lagged, Subscribed, Unsubscribed, Pong, Error]


@dataclass(frozen=True)
class Raw:
    """A message of an ``op`` this client does not know (a newer server)."""

    value: dict[str, Any] = field(default_factory=dict)


def parse(value: dict[str, Any]) -> ServerMsg | Raw:
    """One decoded JSON message to its dataclass."""
    op = value.get("op")
    if op in ("msg", "snapshot"):
        return Publication(value["topic"], int(value["seq"]), int(value["ts"]), value.get("data"), op == "snapshot")
    if op == "reset":
        return Reset(value["topic"])
    if op == "lagged":
        return Lagged(int(value["dropped"]))
    if op == "subscribed":
        return Subscribed(list(value["topics"]), value.get("id"))
    if op == "unsubscribed":
        return Unsubscribed(list(value["topics"]), value.get("id"))
    if op == "pong":
        return Pong(value.get("id"))
    if op == "error":
        return Error(value["code"], value.get("message", ""), value.get("id"))
    return Raw(value)


def parse_frame(text: str) -> list[dict[str, Any]]:
    """One text frame: a single message or a batch (a JSON array of messages)."""
    value = json.loads(text)
    return value if isinstance(value, list) else [value]
