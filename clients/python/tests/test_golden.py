"""Replays the golden transcripts (tests/fixtures/transcripts) with this client: the QUIC
exchange with the Publisher, the WebSocket exchange with the Subscriber."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request

import pytest

from conftest import contains, transcripts
from opensports_client import Publisher, Subscriber


def latest(http: str, topic: str) -> dict | None:
    url = f"{http}/v1/topics/{urllib.parse.quote(topic, safe='')}/latest"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


async def replay(server, script: dict) -> None:
    pub = await Publisher.connect(
        server.quic_host, server.quic_port, server.token, fingerprint=server.fingerprint, http_url=server.http
    )
    for event in script["publish"]["events"]:
        await pub.send(event)
    await pub.flush(60)
    ack = script["publish"]["expect_ack"]
    assert pub.acked(ack["game"]) == ack["seq"]
    assert not [n for n in pub.notices if n.get("op") == "reject"], pub.notices
    await pub.close()

    wait = script["wait_latest"]
    deadline = time.monotonic() + 60
    while (v := latest(server.http, wait["topic"])) is None or v["seq"] < wait["seq"]:
        assert time.monotonic() < deadline, f"{wait['topic']} never reached seq {wait['seq']}"
        await asyncio.sleep(0.02)

    async with Subscriber(server.ws, reconnect=False) as sub:
        for i, step in enumerate(script["ws"]):
            if "send" in step:
                await sub.send(step["send"])
                continue
            msg = await sub.next(timeout=60)
            actual = _wire(msg)
            assert contains(actual, step["expect"]), f"step {i}: got {actual}, expected {step['expect']}"


def _wire(msg) -> dict:
    """A parsed message back in its wire form (the transcript speaks wire JSON)."""
    from dataclasses import asdict

    from opensports_client import Publication, Raw

    if isinstance(msg, Raw):
        return msg.value
    d = asdict(msg)
    if isinstance(msg, Publication):
        d["op"] = "snapshot" if d.pop("snapshot") else "msg"
    else:
        d["op"] = {
            "Reset": "reset", "Lagged": "lagged", "Subscribed": "subscribed",
            "Unsubscribed": "unsubscribed", "Pong": "pong", "Error": "error",
        }[type(msg).__name__]
    return {k: v for k, v in d.items() if v is not None}


@pytest.mark.parametrize("path", transcripts(), ids=lambda p: p.stem)
def test_golden_transcript(server, path):
    asyncio.run(replay(server, json.loads(path.read_text())))
