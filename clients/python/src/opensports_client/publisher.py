"""QUIC publisher (PROTOCOL.md section 1) over aioquic, JSON codec.

The JSON codec (``0x01``) is the path for every non-Rust publisher: the rkyv codec is the Rust
client's zero-copy layout and has no meaning elsewhere.

Certificate trust goes through aioquic's public CA setting only:

- ``cafile=``/``cadata=``: a CA, or the server's own self-signed ``data_dir/tls/cert.pem``;
- ``fingerprint=`` (the SHA-256 the server prints at start): the certificate is taken from
  ``certificate=`` or fetched from ``http_url + "/v1/tls/certificate"``, its leaf's SHA-256 is
  checked against the pin (:class:`PinMismatch` if it differs, before any connection is made),
  and then it is the only certificate trusted. A man in the middle can serve another
  certificate over HTTP, but not one with the pinned hash, and not the key behind it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import struct
import urllib.request
from typing import Any

from aioquic.asyncio import connect as quic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived

ALPN = "opensports/1"
CODEC_JSON = 0x01


class PublishError(Exception):
    """The server refused the connection (``auth_failed``, ...) or an ack did not come in time."""


class PinMismatch(PublishError):
    """The server's certificate does not have the pinned SHA-256."""


def frame(value: dict[str, Any]) -> bytes:
    """One JSON frame: ``u32be(len + 1)``, codec byte ``01``, the JSON."""
    body = json.dumps(value, separators=(",", ":")).encode()
    return struct.pack(">IB", len(body) + 1, CODEC_JSON) + body


def leaf_fingerprint(pem: str) -> str:
    """SHA-256 (lowercase hex) of the first certificate's DER in a PEM chain."""
    m = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem, re.S)
    if not m:
        raise PublishError("no certificate in the PEM")
    return hashlib.sha256(base64.b64decode("".join(m.group(1).split()))).hexdigest()


def pinned_certificate(fingerprint: str, *, certificate: str | None = None, http_url: str | None = None) -> str:
    """The server's certificate (PEM), checked against ``fingerprint``."""
    if certificate is None:
        if http_url is None:
            raise PublishError("pinning by fingerprint needs certificate= or http_url=")
        with urllib.request.urlopen(http_url.rstrip("/") + "/v1/tls/certificate", timeout=10) as r:
            certificate = r.read().decode()
    want = fingerprint.replace(":", "").lower()
    got = leaf_fingerprint(certificate)
    if got != want:
        raise PinMismatch(f"the server's certificate has SHA-256 {got}, not the pinned {want}")
    return certificate


class _Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.control_id: int | None = None
        self.buffer = b""
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == self.control_id:
            self.buffer += event.data
            while len(self.buffer) >= 4:
                (n,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) < 4 + n:
                    break
                codec, body = self.buffer[4], self.buffer[5 : 4 + n]
                self.buffer = self.buffer[4 + n :]
                if codec == CODEC_JSON:
                    self.frames.put_nowait(json.loads(body))
        elif isinstance(event, ConnectionTerminated):
            self.frames.put_nowait(None)


class Publisher:
    """Publishes events (dicts in the wire JSON form, PROTOCOL.md section 1.3) on one stream per
    game, keeps every un-acked event, and tracks acks, gaps and rejects.

    >>> pub = await Publisher.connect("127.0.0.1", 4433, "token", fingerprint="ab12...",
    ...                               http_url="http://127.0.0.1:8080")
    >>> await pub.send({"game": "g1", "seq": 1, "ts": 1700000000000000, "sport": "basketball",
    ...                 "type": "game_start", "home": "BOS", "away": "NYK"})
    >>> await pub.flush()
    >>> await pub.close()
    """

    def __init__(self, protocol: _Protocol, stack: contextlib.AsyncExitStack, welcome: dict[str, Any]):
        self._p = protocol
        self._stack = stack
        self.welcome = welcome
        self._streams: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        self._acked: dict[str, int] = {}
        self._unacked: dict[str, list[tuple[int, bytes]]] = {}
        self.notices: list[dict[str, Any]] = []
        """``gap``, ``reject``, ``error`` and ``log`` (the durable log failing or open again) messages from the server, in order."""
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        token: str,
        *,
        fingerprint: str | None = None,
        certificate: str | None = None,
        http_url: str | None = None,
        cafile: str | None = None,
        server_name: str = "localhost",
        name: str = "opensports-python",
        timeout: float = 10.0,
    ) -> "Publisher":
        config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name=server_name)
        if fingerprint is not None:
            pem = pinned_certificate(fingerprint, certificate=certificate, http_url=http_url)
            config.load_verify_locations(cadata=pem.encode())
        elif cafile is not None or certificate is not None:
            config.load_verify_locations(cafile=cafile, cadata=certificate.encode() if certificate else None)
        stack = contextlib.AsyncExitStack()
        protocol = await stack.enter_async_context(
            quic_connect(host, port, configuration=config, create_protocol=_Protocol, wait_connected=True)
        )
        assert isinstance(protocol, _Protocol)
        protocol.control_id = protocol._quic.get_next_available_stream_id()
        protocol._quic.send_stream_data(protocol.control_id, frame({"op": "hello", "token": token, "publisher": name}))
        protocol.transmit()
        reply = await asyncio.wait_for(protocol.frames.get(), timeout)
        if not reply or reply.get("op") != "welcome":
            await stack.aclose()
            raise PublishError(f"hello refused: {reply}")
        return cls(protocol, stack, reply)

    async def _read(self) -> None:
        while True:
            msg = await self._p.frames.get()
            if msg is None:
                self.notices.append({"op": "error", "code": "connection_closed", "message": "the connection ended"})
                self._changed.set()
                return
            if msg.get("op") == "ack":
                game, seq = msg["game"], int(msg["seq"])
                self._acked[game] = max(self._acked.get(game, 0), seq)
                self._unacked[game] = [(s, f) for s, f in self._unacked.get(game, []) if s > seq]
            else:
                self.notices.append(msg)
            self._changed.set()

    async def send(self, event: dict[str, Any]) -> None:
        """Queues one event on its game's stream (``game`` and ``seq`` set by the caller)."""
        game, seq = event["game"], int(event["seq"])
        data = frame(event)
        if len(data) - 4 > int(self.welcome.get("max_frame", 65536)):
            raise PublishError(f"event {game}/{seq} is over the server's max_frame")
        stream = self._streams.get(game)
        if stream is None:
            stream = self._p._quic.get_next_available_stream_id(is_unidirectional=True)
            self._streams[game] = stream
        self._p._quic.send_stream_data(stream, data)
        self._p.transmit()
        self._sent[game] = seq
        self._unacked.setdefault(game, []).append((seq, data))

    def acked(self, game: str) -> int:
        """The highest seq of ``game`` the server has committed (0: none)."""
        return self._acked.get(game, 0)

    def unacked(self) -> int:
        return sum(len(v) for v in self._unacked.values())

    async def flush(self, timeout: float = 30.0) -> None:
        """Waits until every event sent is acked (or rejected); :class:`PublishError` after ``timeout``."""

        async def done() -> None:
            while True:
                rejected = {(n.get("game"), n.get("seq")) for n in self.notices if n.get("op") == "reject"}
                pending = [
                    (g, s)
                    for g, items in self._unacked.items()
                    for s, _ in items
                    if (g, s) not in rejected
                ]
                if not pending:
                    return
                if any(n.get("code") == "connection_closed" for n in self.notices):
                    raise PublishError(f"connection closed with {len(pending)} events un-acked")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(done(), timeout)
        except asyncio.TimeoutError as e:
            raise PublishError(f"{self.unacked()} events not acked within {timeout} s") from e

    async def close(self) -> None:
        """Finishes every game stream and closes the connection."""
        for stream in self._streams.values():
            self._p._quic.send_stream_data(stream, b"", end_stream=True)
        self._p.transmit()
        self._reader.cancel()
        self._p.close()
        await self._stack.aclose()
