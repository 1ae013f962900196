"""Run a plugin in process, under pytest or any runner: no server, no wasm.

    from opensports_plugin.testing import Session, events

    def test_counts_made_shots():
        s = Session(MadeShots, name="made-shots")
        out = s.feed(events(sim="basketball", seed=1))
        assert out[-1]["data"]["made"] == sum(
            1 for e in s.events if e["type"] == "shot" and e["made"])

``events`` asks the ``opensports`` binary (``$OPENSPORTS_BIN``, else on ``PATH``) for a
simulated game or a real provider feed, as ``opensports plugin test`` would see them; a
``Session`` records each output as the server would publish it
(``{"game", "seq", "topic", "data"}``, the lines ``opensports plugin test`` prints), so the
same golden file checks both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Callable, Iterable

from . import HostError, Plugin, Runtime

__all__ = ["Session", "events", "opensports_bin"]


class _Recorder:
    def __init__(self, name: str, max_emits: int, max_bytes: int, models: dict[str, Callable]):
        self.name = name
        self.max_emits = max_emits
        self.max_bytes = max_bytes
        self.models = models
        self.outputs: list[dict[str, Any]] = []
        self.logs: list[tuple[str, str]] = []
        self.event: dict[str, Any] = {}
        self.emitted = 0

    def emit(self, topic: str, payload: str) -> None:
        # The server's rules (PROTOCOL.md, plugin limits), so a test fails where the server would.
        if self.emitted >= self.max_emits:
            raise HostError(-1)
        if len(payload.encode()) > self.max_bytes:
            raise HostError(-2)
        if not topic or any(c in topic for c in "+#") or topic.startswith("/") or topic.endswith("/"):
            raise HostError(-3)
        self.emitted += 1
        e = self.event
        data = json.loads(payload)
        if topic.startswith("trigger/"):
            # As the server publishes a plugin's trigger (rule set version 1).
            data = {"rule": f"{self.name}:{topic[8:]}", "version": 1, "seq": e["seq"], "ts": e["ts"],
                    "plugin": self.name, "topic": None, "value": data.get("value"),
                    "facts": data.get("facts") or {}, "text": str(data.get("text", ""))[:256]}
            self.outputs.append({"game": e["game"], "seq": e["seq"], "topic": f"game/{e['game']}/triggers",
                                 "data": data})
        else:
            self.outputs.append({"game": e["game"], "seq": e["seq"],
                                 "topic": f"game/{e['game']}/{self.name}/{topic}", "data": data})

    def infer(self, model: str, inputs: list[float]) -> list[float]:
        if model not in self.models:
            raise HostError(-10)
        return list(self.models[model](inputs))

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))


class Session:
    """One plugin class, fed events in process. ``models`` maps a model name to a function
    standing in for it (inference runs on the server; a test decides what it returns)."""

    def __init__(self, cls: type[Plugin], name: str = "plugin", config: dict[str, Any] | None = None,
                 models: dict[str, Callable[[list[float]], Iterable[float]]] | None = None,
                 max_emits: int = 64, max_emit_bytes: int = 65536):
        self._host = _Recorder(name, max_emits, max_emit_bytes, models or {})
        self._rt = Runtime(cls, self._host)
        self._rt.init(json.dumps(config or {}))
        self._sports = set(cls.SPORTS)
        #: Every event fed so far.
        self.events: list[dict[str, Any]] = []

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """Every output so far, in order."""
        return self._host.outputs

    @property
    def logs(self) -> list[tuple[str, str]]:
        return self._host.logs

    def feed(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs the plugin on ``events`` (skipping sports it did not ask for, as the server
        does); returns the outputs they caused."""
        start = len(self._host.outputs)
        for e in events:
            if self._sports and e.get("sport") not in self._sports:
                continue
            self._host.event = e
            self._host.emitted = 0
            self.events.append(e)
            self._rt.on_event_value(e)
        return self._host.outputs[start:]

    def snapshot(self, game: str) -> bytes:
        return self._rt.snapshot(game)

    def restore(self, game: str, state: bytes) -> None:
        self._rt.restore(game, state)


def opensports_bin() -> str:
    """The ``opensports`` binary: ``$OPENSPORTS_BIN``, else the one on ``PATH``."""
    found = os.environ.get("OPENSPORTS_BIN") or shutil.which("opensports")
    if not found:
        raise RuntimeError("the opensports binary is needed for events: put it on PATH or set OPENSPORTS_BIN")
    return found


def events(sim: str | None = None, seed: int = 1, replay: str | None = None) -> list[dict[str, Any]]:
    """The events of a simulated game (``sim``: basketball, football, soccer, f1) or of a
    replay file (a provider feed or JSONL of events), from ``opensports plugin events``."""
    args = [opensports_bin(), "plugin", "events"]
    if replay is not None:
        args += ["--replay", replay]
    elif sim is not None:
        args += ["--sim", sim, "--seed", str(seed)]
    else:
        raise ValueError("events() needs sim= or replay=")
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


