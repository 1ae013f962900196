"""Each soccer team's pass network, for the analysts' graphics.

Feeds carry the passer, not the receiver: a completed pass's receiver is taken to be the player
of the same team in the next event that names one (the usual reconstruction from event data).

Outputs (``game/{id}/soccer-passes/...``):

- ``network/{side}`` every ``every`` completed passes of a team (default 10) and at the end of
  each period: ``{"team", "passes", "completed", "progressive", "players": [{"player", "x",
  "y", "passes"}], "links": [{"from", "to", "count"}]}``: each player's average position
  (metres, the pitch 105 x 68, attacking to the right) over the passes they made, and the
  ``max_links`` (default 12) most frequent passer-to-receiver links, most frequent first.
- ``progressive/{side}`` on each progressive pass (a completed pass that moves the ball at least
  25% of the remaining distance to the opponents' goal, ending in the attacking half):
  ``{"player", "x", "y", "end_x", "end_y", "count"}``.

Trigger ``pass_streak``: a team completes ``streak`` (default 15) passes in a row.
"""

from __future__ import annotations

import math
from typing import Any

from opensports_plugin import Ctx, Plugin
from opensports_plugin.events import Event

GOAL = (105.0, 34.0)


def _progressive(x: float, y: float, ex: float, ey: float) -> bool:
    before = math.dist((x, y), GOAL)
    after = math.dist((ex, ey), GOAL)
    return ex > 52.5 and after <= 0.75 * before


class Team:
    def __init__(self, name: str):
        self.name = name
        self.passes = 0
        self.completed = 0
        self.progressive = 0
        self.streak = 0
        # player -> [sum x, sum y, passes]
        self.players: dict[str, list[float]] = {}
        self.links: dict[str, int] = {}

    def network(self, max_links: int) -> dict[str, Any]:
        players = [
            {"player": p, "x": round(v[0] / v[2], 1), "y": round(v[1] / v[2], 1), "passes": int(v[2])}
            for p, v in sorted(self.players.items())
        ]
        links = sorted(self.links.items(), key=lambda kv: (-kv[1], kv[0]))[:max_links]
        return {
            "team": self.name,
            "passes": self.passes,
            "completed": self.completed,
            "progressive": self.progressive,
            "players": players,
            "links": [{"from": k.split("\u2192")[0], "to": k.split("\u2192")[1], "count": n} for k, n in links],
        }


class PassNetwork(Plugin):
    SPORTS = ("soccer",)

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.every = int(config.get("every", 10))
        self.max_links = int(config.get("max_links", 12))
        self.streak = int(config.get("streak", 15))
        self.teams = {"home": Team("home"), "away": Team("away")}
        # The last completed pass waiting for its receiver: (side, passer).
        self.pending: tuple[str, str] | None = None

    def on_event(self, ctx: Ctx, event: Event) -> None:
        kind = event["type"]
        if kind == "game_start":
            self.teams["home"].name = event["home"]
            self.teams["away"].name = event["away"]
            return
        if kind == "period_end":
            for side, team in self.teams.items():
                if team.passes:
                    ctx.emit(f"network/{side}", team.network(self.max_links))
            self.pending = None
            return
        player = event.get("player")
        side = event.get("side")
        if self.pending is not None and isinstance(player, str) and side is not None:
            p_side, passer = self.pending
            if side == p_side and player != passer:
                link = f"{passer}\u2192{player}"
                team = self.teams[side]
                team.links[link] = team.links.get(link, 0) + 1
            self.pending = None
        if kind != "pass":
            if kind in ("foul", "card", "shot", "goal", "substitution") and side in self.teams:
                # The other team touched it, or play stopped: a streak ends.
                other = "away" if side == "home" else "home"
                self.teams[other].streak = 0
            return
        team = self.teams[event["side"]]
        team.passes += 1
        acc = team.players.setdefault(event["player"], [0.0, 0.0, 0.0])
        acc[0] += event["x"]
        acc[1] += event["y"]
        acc[2] += 1
        if not event["completed"]:
            team.streak = 0
            return
        team.completed += 1
        team.streak += 1
        other = self.teams["away" if event["side"] == "home" else "home"]
        other.streak = 0
        self.pending = (event["side"], event["player"])
        if _progressive(event["x"], event["y"], event["end_x"], event["end_y"]):
            team.progressive += 1
            ctx.emit(f"progressive/{event['side']}", {
                "player": event["player"], "x": event["x"], "y": event["y"],
                "end_x": event["end_x"], "end_y": event["end_y"], "count": team.progressive,
            })
        if team.streak == self.streak:
            ctx.trigger("pass_streak", f"{team.name} have strung {team.streak} passes together",
                        {"team": team.name, "side": event["side"], "passes": team.streak})
        if team.completed % self.every == 0:
            ctx.emit(f"network/{event['side']}", team.network(self.max_links))

    def snapshot(self) -> Any:
        return {
            "pending": list(self.pending) if self.pending else None,
            "teams": {s: vars(t) for s, t in self.teams.items()},
        }

    def restore(self, state: Any) -> None:
        self.pending = tuple(state["pending"]) if state["pending"] else None
        for side, fields in state["teams"].items():
            team = Team(fields["name"])
            team.__dict__.update(fields)
            self.teams[side] = team


PLUGIN = PassNetwork
