"""OpenSports Edge client: a WebSocket :class:`Subscriber` (reconnect, ``since`` resume) and a
QUIC :class:`Publisher` (JSON codec, certificate pinning through public APIs).

The wire types' JSON Schema is ``clients/schema/opensports.schema.json`` (also served at
``GET /v1/schema``).
"""

from .messages import Error, Lagged, Pong, Publication, Raw, Reset, ServerMsg, Subscribed, Unsubscribed, parse
from .publisher import PinMismatch, Publisher, PublishError, frame, leaf_fingerprint, pinned_certificate
from .subscriber import OpenSportsError, Subscriber
from .topics import matches

__all__ = [
    "Error", "Lagged", "OpenSportsError", "PinMismatch", "Pong", "Publication", "PublishError", "Publisher",
    "Raw", "Reset", "ServerMsg", "Subscribed", "Subscriber", "Unsubscribed", "frame", "leaf_fingerprint",
    "matches", "parse", "pinned_certificate",
]
