"""WebSocket subscriber (PROTOCOL.md section 2) with automatic reconnect and ``since`` resume."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
from typing import Any, AsyncIterator, Iterable

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from .messages import Error, OpId, Publication, Raw, ServerMsg, Subscribed, Unsubscribed, parse, parse_frame
from .topics import matches


#: The code of a connection that was not made and not refused by the server (PROTOCOL.md 2.6).
CONNECT_FAILED = "connect_failed"


class OpenSportsError(Exception):
    """The server refused an op (``error``), or the connection could not be made."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Subscriber:
    """Subscribes to topic patterns and yields every message, in order.

    ``since`` resume is automatic: the subscriber remembers the last seq of every topic it was
    given, and after a dropped connection it reconnects (exponential backoff with jitter, up to
    ``max_backoff`` seconds) and subscribes again with those seqs, so the server sends exactly
    what was missed (or ``reset`` + ``snapshot`` when its history no longer reaches back).

    >>> async with Subscriber("ws://127.0.0.1:8080/ws") as sub:
    ...     await sub.subscribe(["game/+/state"])
    ...     async for msg in sub:
    ...         print(msg)
    """

    def __init__(self, url: str, token: str | None = None, *, reconnect: bool = True, max_backoff: float = 5.0):
        self.url = url
        self.token = token
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self._ws: ClientConnection | None = None
        self._pending: collections.deque[ServerMsg | Raw] = collections.deque()
        self._subs: dict[str, tuple[str, int]] = {}  # pattern -> (mode, delay_ms)
        self._seqs: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.reconnects = 0

    async def __aenter__(self) -> "Subscriber":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            self._ws = await ws_connect(self.url, additional_headers=headers, max_size=8 << 20)
        except websockets.InvalidStatus as e:
            # The server refused the upgrade: its JSON error body names the code (PROTOCOL.md 2.6).
            body = e.response.body.decode(errors="replace") if e.response.body else ""
            try:
                code = json.loads(body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = CONNECT_FAILED
            raise OpenSportsError(code, f"HTTP {e.response.status_code}: {body}") from e
        except (OSError, websockets.InvalidHandshake) as e:
            raise OpenSportsError(CONNECT_FAILED, f"could not connect to {self.url}: {e}") from e

    async def close(self) -> None:
        self.reconnect = False
        if self._ws is not None:
            await self._ws.close()

    async def disconnect(self) -> None:
        """Drops the connection as a flaky network would; the next read reconnects and resumes."""
        if self._ws is not None:
            await self._ws.close()

    def last_seq(self, topic: str) -> int | None:
        """The last seq received on ``topic`` (the resume point)."""
        return self._seqs.get(topic)

    async def send(self, op: dict[str, Any]) -> None:
        """Sends one raw client op (PROTOCOL.md section 2.1)."""
        assert self._ws is not None, "connect first"
        await self._ws.send(json.dumps(op, separators=(",", ":")))

    async def subscribe(
        self,
        topics: Iterable[str],
        mode: str = "all",
        since: dict[str, int] | None = None,
        delay_ms: int = 0,
    ) -> Subscribed:
        """Subscribes and waits for the answer; raises :class:`OpenSportsError` if refused.
        Messages that arrive meanwhile (the snapshots) stay queued for :meth:`next`.
        ``delay_ms``: each message at its source time plus this (PROTOCOL.md section 2.7)."""
        topics = list(topics)
        op: dict[str, Any] = {"op": "sub", "topics": topics, "mode": mode, "id": next(self._ids)}
        if since:
            op["since"] = since
        if delay_ms:
            op["delay_ms"] = delay_ms
        reply = await self._request(op)
        for t in topics:
            self._subs[t] = (mode, delay_ms)
        assert isinstance(reply, Subscribed)
        return reply

    async def unsubscribe(self, topics: Iterable[str]) -> Unsubscribed:
        topics = list(topics)
        reply = await self._request({"op": "unsub", "topics": topics, "id": next(self._ids)})
        for t in topics:
            self._subs.pop(t, None)
        assert isinstance(reply, Unsubscribed)
        return reply

    async def _request(self, op: dict[str, Any]) -> ServerMsg | Raw:
        """Sends ``op`` and takes its answer (matched by id) out of the queue; everything else
        stays queued, in order."""
        await self.send(op)
        scanned = 0
        while True:
            for i in range(scanned, len(self._pending)):
                msg = self._pending[i]
                if not isinstance(msg, (Publication, Raw)) and getattr(msg, "id", None) == op["id"]:
                    del self._pending[i]
                    if isinstance(msg, Error):
                        raise OpenSportsError(msg.code, msg.message)
                    return msg
            scanned = len(self._pending)
            await self._fill()

    async def next(self, timeout: float | None = None) -> ServerMsg | Raw:
        """The next message (reconnecting as needed); ``TimeoutError`` after ``timeout`` s."""
        async def take() -> ServerMsg | Raw:
            while not self._pending:
                await self._fill()
            return self._pending.popleft()

        return await asyncio.wait_for(take(), timeout)

    def __aiter__(self) -> AsyncIterator[ServerMsg | Raw]:
        return self

    async def __anext__(self) -> ServerMsg | Raw:
        try:
            return await self.next()
        except websockets.ConnectionClosed:
            raise StopAsyncIteration

    async def _fill(self) -> None:
        """Reads one frame (a message or a batch) into the queue, reconnecting if it dropped."""
        assert self._ws is not None, "connect first"
        try:
            text = await self._ws.recv()
        except websockets.ConnectionClosed:
            if not self.reconnect:
                raise
            await self._resume()
            return
        if isinstance(text, bytes):
            return
        for value in parse_frame(text):
            msg = parse(value)
            if isinstance(msg, Publication):
                self._seqs[msg.topic] = msg.seq
            self._pending.append(msg)

    async def _resume(self) -> None:
        """Reconnects with backoff and subscribes again from the last seqs."""
        for attempt in itertools.count():
            delay = min(self.max_backoff, 0.05 * (2**attempt)) * (0.5 + random.random() / 2)
            await asyncio.sleep(delay)
            try:
                await self.connect()
            except (OSError, OpenSportsError, websockets.InvalidHandshake):
                continue
            break
        self.reconnects += 1
        for pattern, (mode, delay_ms) in self._subs.items():
            since = {t: s for t, s in self._seqs.items() if matches(pattern, t)}
            op: dict[str, Any] = {"op": "sub", "topics": [pattern], "mode": mode, "id": f"resume-{next(self._ids)}"}
            if since:
                op["since"] = since
            if delay_ms:
                op["delay_ms"] = delay_ms
            await self.send(op)


__all__ = ["OpenSportsError", "Subscriber", "OpId"]
