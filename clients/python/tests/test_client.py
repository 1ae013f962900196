"""The client's own promises against the real server: resume without gaps after a dropped
connection, certificate pinning, refused credentials, typed errors, and the committed JSON
Schema accepting what the server accepts and refusing what it refuses."""

from __future__ import annotations

import asyncio

import jsonschema
import pytest

from conftest import schema, transcripts
from opensports_client import OpenSportsError, PinMismatch, Publication, Publisher, PublishError, Subscriber

GAME = "py-resume"


def event(seq: int, **body) -> dict:
    return {"game": GAME, "seq": seq, "ts": 1_700_000_000_000_000 + seq * 1_000_000, "sport": "soccer", **body}


def soccer_events(first: int, last: int) -> list[dict]:
    out = []
    for seq in range(first, last + 1):
        if seq == 1:
            out.append(event(1, type="game_start", home="ARS", away="CHE"))
        else:
            out.append(event(seq, type="pass", side="home", player="saka", x=50.0, y=30.0, end_x=60.0, end_y=30.0, completed=True))
    return out


async def publish(server, events: list[dict]) -> None:
    pub = await Publisher.connect(server.quic_host, server.quic_port, server.token,
                                  fingerprint=server.fingerprint, http_url=server.http)
    for e in events:
        await pub.send(e)
    await pub.flush(60)
    rejects = [n for n in pub.notices if n.get("op") == "reject"]
    await pub.close()
    assert not rejects, rejects


def test_a_dropped_connection_resumes_with_no_gap_and_no_duplicate(server):
    async def run():
        await publish(server, soccer_events(1, 10))
        topic = f"game/{GAME}/state"
        async with Subscriber(server.ws) as sub:
            await sub.subscribe([topic])
            seqs = []
            while not seqs or seqs[-1] < 10:
                m = await sub.next(timeout=60)
                if isinstance(m, Publication):
                    seqs.append(m.seq)
            assert seqs[-1] == 10 and sub.last_seq(topic) == 10
            await sub.disconnect()
            await publish(server, soccer_events(11, 30))
            got = []
            while not got or got[-1].seq < 30:
                m = await sub.next(timeout=60)
                if isinstance(m, Publication):
                    got.append(m)
            assert sub.reconnects == 1
            assert [(m.seq, m.snapshot) for m in got] == [(s, False) for s in range(11, 31)]

    asyncio.run(run())


def test_a_wrong_pin_is_refused_before_connecting(server):
    async def run():
        with pytest.raises(PinMismatch):
            await Publisher.connect(server.quic_host, server.quic_port, server.token,
                                    fingerprint="00" * 32, http_url=server.http)

    asyncio.run(run())


def test_wrong_credentials_are_refused(server):
    async def run():
        with pytest.raises(PublishError, match="auth_failed"):
            await Publisher.connect(server.quic_host, server.quic_port, "not-a-token",
                                    fingerprint=server.fingerprint, http_url=server.http)
        async with Subscriber(server.ws, reconnect=False) as sub:
            with pytest.raises(OpenSportsError) as e:
                await sub.subscribe(["game/#/x"])
            assert e.value.code == "bad_pattern"
        # One set of error names across clients (PROTOCOL.md 2.6): a refused connection is the
        # server's code, an unreachable server connect_failed.
        with pytest.raises(OpenSportsError) as e:
            await Subscriber(server.ws, token="osk_000000000000_wrong", reconnect=False).connect()
        assert e.value.code == "unauthorized"
        with pytest.raises(OpenSportsError) as e:
            await Subscriber("ws://127.0.0.1:9/ws", reconnect=False).connect()
        assert e.value.code == "connect_failed"

    asyncio.run(run())


def test_the_schema_accepts_every_transcript_event_and_refuses_bad_ones():
    doc = schema()
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/Event", **doc})
    events = [e for p in transcripts() for e in __import__("json").loads(p.read_text())["publish"]["events"]]
    events += soccer_events(1, 3)
    for e in events:
        validator.validate(e)
    bad = [
        {**events[0], "seq": 0},
        {**events[0], "surprise": 1},
        {**events[0], "game": "has space"},
        {**events[0], "sport": "cricket"},
        {k: v for k, v in events[0].items() if k != "ts"},
    ]
    for e in bad:
        assert not validator.is_valid(e), e
    server_msgs = jsonschema.Draft202012Validator({"$ref": "#/$defs/ServerMsg", **doc})
    server_msgs.validate({"op": "error", "code": "bad_pattern", "message": "m", "id": 4})
    assert not server_msgs.is_valid({"op": "msg", "topic": "t"})
