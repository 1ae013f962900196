"""The server under test is started by the Rust harness (tests/tests/clients.rs), which passes
its addresses here; run ``cargo nextest run -E 'test(python)'`` rather than pytest alone."""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass

import pytest


@dataclass
class Server:
    http: str
    ws: str
    quic_host: str
    quic_port: int
    fingerprint: str
    token: str


@pytest.fixture(scope="session")
def server() -> Server:
    if "OPENSPORTS_HTTP" not in os.environ:
        pytest.fail("no server: run through tests/tests/clients.rs (cargo nextest run -E 'test(python)')")
    host, port = os.environ["OPENSPORTS_QUIC"].rsplit(":", 1)
    return Server(
        http=os.environ["OPENSPORTS_HTTP"],
        ws=os.environ["OPENSPORTS_WS"],
        quic_host=host,
        quic_port=int(port),
        fingerprint=os.environ["OPENSPORTS_FINGERPRINT"],
        token=os.environ["OPENSPORTS_TOKEN"],
    )


REPO = pathlib.Path(__file__).resolve().parents[3]


def transcripts() -> list[pathlib.Path]:
    return sorted((REPO / "tests" / "fixtures" / "transcripts").glob("*.json"))


def schema() -> dict:
    return json.loads((REPO / "clients" / "schema" / "opensports.schema.json").read_text())


def contains(actual: object, expected: object) -> bool:
    """Whether ``actual`` has every field of ``expected`` (recursively; lists element by element)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(contains, actual, expected))
    return actual == expected
