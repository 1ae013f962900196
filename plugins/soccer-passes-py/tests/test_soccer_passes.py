"""In-process tests of the plugin (pytest): the same events `opensports plugin test` runs the
built component on. The real match needs OPENSPORTS_DATA (../shared/data); a simulated one
stands in without it."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from opensports_plugin.testing import Session, events, opensports_bin

from soccer_passes import PLUGIN

HERE = Path(__file__).resolve().parent.parent
DATA = os.environ.get("OPENSPORTS_DATA")
MATCH = Path(DATA, "soccer", "statsbomb_15986_events.json") if DATA else None


def game():
    if MATCH and MATCH.exists():
        return events(replay=str(MATCH))
    return events(sim="soccer", seed=2)


def test_every_network_counts_the_passes_made_so_far():
    evs = game()
    s = Session(PLUGIN, name="soccer-passes")
    out = s.feed(evs)
    nets = [o for o in out if "/network/" in o["topic"]]
    assert len(nets) > 20
    for o in nets:
        side = o["topic"].rsplit("/", 1)[1]
        made = [e for e in evs if e["type"] == "pass" and e["side"] == side and e["seq"] <= o["seq"]]
        d = o["data"]
        assert d["passes"] == len(made)
        assert d["completed"] == sum(1 for e in made if e["completed"])
        assert sum(p["passes"] for p in d["players"]) == d["passes"]
        assert all(0 <= p["x"] <= 105 and 0 <= p["y"] <= 68 for p in d["players"])
        counts = [link["count"] for link in d["links"]]
        assert counts == sorted(counts, reverse=True)
        assert sum(counts) <= d["completed"]


def test_progressive_passes_move_the_ball_towards_goal():
    s = Session(PLUGIN, name="soccer-passes")
    out = s.feed(game())
    prog = [o["data"] for o in out if "/progressive/" in o["topic"]]
    assert prog
    goal = (105.0, 34.0)
    for p in prog:
        before = math.dist((p["x"], p["y"]), goal)
        assert p["end_x"] > 52.5 and math.dist((p["end_x"], p["end_y"]), goal) <= 0.75 * before


def test_in_process_outputs_are_what_the_built_component_gives():
    wasm = HERE / "build" / "soccer_passes.wasm"
    if not wasm.exists():
        pytest.fail("build it first: opensports plugin build .")
    s = Session(PLUGIN, name="soccer-passes")
    out = s.feed(events(sim="soccer", seed=2))
    run = subprocess.run([opensports_bin(), "plugin", "test", str(wasm), "--sim", "soccer", "--seed", "2"],
                         check=True, capture_output=True, text=True)
    assert out == [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def test_snapshot_and_restore_continue_exactly():
    evs = events(sim="soccer", seed=5)
    whole = Session(PLUGIN, name="p").feed(evs)
    half = len(evs) // 2
    first = Session(PLUGIN, name="p")
    first.feed(evs[:half])
    second = Session(PLUGIN, name="p")
    second.restore(evs[0]["game"], first.snapshot(evs[0]["game"]))
    assert second.feed(evs[half:]) == [o for o in whole if o["seq"] >= evs[half]["seq"]]
