"""The component's glue: the WIT world's exports (``opensports:plugin/plugin@2.0.0``) over a
:class:`opensports_plugin.Runtime`. ``opensports plugin build`` generates the app module that
calls :func:`world` with the plugin's class; plugin authors do not import this."""

from __future__ import annotations

import traceback
from typing import Any, Callable

from . import Plugin, Runtime, sports_mask


def world(cls: type[Plugin]) -> type:
    """The ``WitWorld`` class componentize-py exports, running ``cls``."""
    import wit_world
    from componentize_py_types import Err
    from wit_world.imports import host as wit_host

    levels = {
        "error": wit_host.Level.ERROR,
        "warn": wit_host.Level.WARN,
        "info": wit_host.Level.INFO,
        "debug": wit_host.Level.DEBUG,
    }

    class _Host:
        def emit(self, topic: str, payload: str) -> None:
            try:
                wit_host.emit(topic, payload)
            except Err as e:
                from . import HostError

                raise HostError(e.value) from None

        def infer(self, model: str, inputs: list[float]) -> list[float]:
            try:
                return wit_host.infer(model, inputs)
            except Err as e:
                from . import HostError

                raise HostError(e.value) from None

        def log(self, level: str, message: str) -> None:
            wit_host.log(levels.get(level, wit_host.Level.INFO), message)

    host = _Host()
    rt = Runtime(cls, host)

    def guarded(f: Callable[..., Any]) -> Callable[..., Any]:
        # An uncaught exception is logged (its last lines), then fails the event with error 1
        # (the server counts it as the plugin's trap); the log says which line failed.
        def call(*args: Any) -> Any:
            try:
                return f(*args)
            except Exception:
                host.log("error", "".join(traceback.format_exc().splitlines(True)[-6:]))
                raise Err(1) from None

        return call

    class WitWorld(wit_world.WitWorld):
        def sports(self) -> int:
            return sports_mask(cls.SPORTS)

        def init(self, config: str) -> None:
            try:
                rt.init(config)
            except ValueError:
                raise Err(1) from None

        def on_event(self, event: str) -> None:
            guarded(rt.on_event)(event)

        def snapshot(self, game: str) -> bytes:
            return rt.snapshot(game)

        def restore(self, game: str, state: bytes) -> None:
            try:
                rt.restore(game, state)
            except Exception:
                raise Err(1) from None

        def forget(self, game: str) -> None:
            rt.forget(game)

    return WitWorld
