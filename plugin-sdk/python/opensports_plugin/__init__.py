"""OpenSports Edge plugin kit for Python (plugin ABI v2, built with componentize-py).

A plugin is a subclass of :class:`Plugin`. The kit keeps one instance per game, so a plugin
is written as if it watched a single game: ``on_event`` gets that game's events in seq order
(each a dict in the wire JSON form, typed by :mod:`opensports_plugin.events`) and publishes
outputs with :meth:`Ctx.emit` on ``game/{id}/{plugin}/{topic}``.

Plugins are deterministic: no clock, no randomness, no I/O (the server's sandbox has none).
Their outputs depend only on the events they saw, so the server can rebuild them by replay.

    from opensports_plugin import Ctx, Plugin
    from opensports_plugin.events import Event

    class MadeShots(Plugin):
        SPORTS = ("basketball",)

        def __init__(self, config):
            super().__init__(config)
            self.made = 0

        def on_event(self, ctx: Ctx, event: Event) -> None:
            if event["type"] == "shot" and event["made"]:
                self.made += 1
                ctx.emit("made_shots", {"made": self.made})

    PLUGIN = MadeShots

plugin-sdk/README.md documents the contract; ``opensports plugin build`` turns the module into
a ``.wasm`` component and ``opensports plugin test`` runs it offline.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Protocol, Sequence

__all__ = ["ABI_VERSION", "Ctx", "HostError", "Plugin", "Runtime", "SPORT_BITS", "sports_mask"]

#: The plugin ABI this kit speaks (the WIT package ``opensports:plugin@2.0.0``).
ABI_VERSION = "2.0.0"

#: Bit of each sport in the mask ``sports`` returns.
SPORT_BITS = {"basketball": 1, "football": 2, "soccer": 4, "f1": 8}

#: Names of the ABI's status codes (``opensports-proto::plugin_abi``).
STATUS_NAMES = {
    0: "OK",
    1: "BAD_INPUT_BYTES",
    -1: "TOO_MANY_EMITS",
    -2: "TOO_LARGE",
    -3: "BAD_TOPIC",
    -4: "BAD_JSON",
    -5: "BAD_POINTER",
    -10: "NO_SUCH_MODEL",
    -11: "BAD_INPUT",
    -12: "OUTPUT_TOO_SMALL",
    -13: "INFER_FAILED",
}


class HostError(Exception):
    """The server refused an ``emit`` or ``infer``: ``status`` is the ABI's code."""

    def __init__(self, status: int):
        self.status = status
        self.name = STATUS_NAMES.get(status, f"status {status}")
        super().__init__(f"{self.name} ({status})")


class Host(Protocol):
    """What the server offers during a call (the WIT interface ``host``)."""

    def emit(self, topic: str, payload: str) -> None: ...
    def infer(self, model: str, inputs: list[float]) -> list[float]: ...
    def log(self, level: str, message: str) -> None: ...


class Ctx:
    """The plugin's handle to the server during one event."""

    __slots__ = ("_host", "game")

    def __init__(self, host: Host, game: str):
        self._host = host
        #: The game this event belongs to.
        self.game = game

    def emit(self, topic: str, value: Any) -> None:
        """Publishes ``value`` (as JSON) on ``game/{id}/{plugin}/{topic}``.

        Raises :class:`HostError` when the server refuses it (too many, too large, bad topic);
        a refused emit fails the event."""
        self._host.emit(topic, json.dumps(value, separators=(",", ":"), allow_nan=False))

    def trigger(self, name: str, text: str, facts: dict[str, Any]) -> None:
        """Fires trigger ``name`` (1-64 of ``[A-Za-z0-9_-]``): published on
        ``game/{id}/triggers`` as rule ``{plugin}:{name}`` at this event's seq, with ``text``
        and ``facts``, under the operators' controls. Counts as an emit."""
        self.emit(f"trigger/{name}", {"text": text, "facts": facts})

    def infer(self, model: str, inputs: Sequence[float]) -> list[float]:
        """Runs the server's model ``model`` on ``inputs``; returns its outputs."""
        return self._host.infer(model, [float(x) for x in inputs])

    def log(self, level: str, message: str) -> None:
        """Writes to the server's log: ``level`` is error, warn, info or debug."""
        self._host.log(level, message)


class Plugin:
    """Base class of a plugin: one instance per game, made with the plugin's config."""

    #: Sports whose events the plugin wants (names of :data:`SPORT_BITS`); empty: all.
    SPORTS: Sequence[str] = ()

    def __init__(self, config: dict[str, Any]):
        #: The ``config`` table of the plugin's entry in the server config (``{}`` if none).
        self.config = config

    def on_event(self, ctx: Ctx, event: Any) -> None:
        """Called for each event of the game, in seq order."""
        raise NotImplementedError

    def snapshot(self) -> Any:
        """State to persist (JSON-able) so a restart restores instead of replaying; ``None``
        (the default): no snapshots. It must capture everything later outputs depend on."""
        return None

    def restore(self, state: Any) -> None:
        """Rebuilds state from :meth:`snapshot`'s value."""
        raise NotImplementedError


def sports_mask(sports: Sequence[str]) -> int:
    """The ABI's bit mask of ``sports`` (0: all)."""
    mask = 0
    for s in sports:
        if s not in SPORT_BITS:
            raise ValueError(f"unknown sport {s!r}: one of {', '.join(SPORT_BITS)}")
        mask |= SPORT_BITS[s]
    return mask


class Runtime:
    """The per-game instances of one plugin class, driven by JSON text as the ABI hands it
    over. The component glue and :mod:`opensports_plugin.testing` both run plugins through it.
    """

    def __init__(self, factory: Callable[[dict[str, Any]], Plugin], host: Host):
        self._factory = factory
        self._host = host
        self._config: dict[str, Any] = {}
        self._games: dict[str, Plugin] = {}

    def init(self, config_json: str) -> None:
        config = json.loads(config_json or "{}")
        if not isinstance(config, dict):
            raise ValueError("the plugin config must be a JSON object")
        self._config = config

    def _game(self, game: str) -> Plugin:
        p = self._games.get(game)
        if p is None:
            p = self._games[game] = self._factory(self._config)
        return p

    def on_event(self, event_json: str) -> None:
        self.on_event_value(json.loads(event_json))

    def on_event_value(self, event: dict[str, Any]) -> None:
        game = event["game"]
        self._game(game).on_event(Ctx(self._host, game), event)

    def snapshot(self, game: str) -> bytes:
        p = self._games.get(game)
        state = None if p is None else p.snapshot()
        if state is None:
            return b""
        return json.dumps(state, separators=(",", ":"), allow_nan=False).encode()

    def restore(self, game: str, state: bytes) -> None:
        p = self._factory(self._config)
        p.restore(json.loads(state))
        self._games[game] = p

    def forget(self, game: str) -> None:
        self._games.pop(game, None)
