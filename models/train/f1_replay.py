"""One race of the F1 training tables as the server's F1 events, with the model inputs the
training rows hold for it: the check that the server builds the inputs the models were trained
on (`tests/tests/models.rs` applies the events to a game state and compares every car, every
lap).

    python models/train/f1_replay.py --data ../shared/data --race 2021-22 > race.json

Writes one JSON object: `events` (F1 event bodies, in order: `session_start` with the race
distance, each car's grid slot as a `position`, then per lap its pit stops (`pit_in`, `pit_out`)
and every car's `lap` line in running order, gap and interval as the training rows have them),
`inputs` (the names, F1_INPUTS) and `rows` (`lap`, `driver`, `input`: the training row's inputs
for that car after that lap).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
import evaluate  # noqa: E402
import features as F  # noqa: E402


def ms(v) -> int | None:
    return None if pd.isna(v) else int(round(float(v)))


def race(data: str, season: int, rnd: int) -> dict:
    rows = F.f1_rows(evaluate.train_dir(data))
    rows = rows[(rows["season"] == season) & (rows["round"] == rnd)]
    if rows.empty:
        sys.exit(f"f1_replay.py: no race {season}-{rnd} with pit-stop data in the tables")
    x = F.f1_features(rows)
    stops = pd.read_csv(os.path.join(evaluate.train_dir(data), "f1", "f1_pitstops.csv.gz"))
    stops = stops[(stops["season"] == season) & (stops["round"] == rnd)]
    events = [{"type": "session_start", "name": f"{season} round {rnd}", "session": "race",
               "laps": int(rows["total_laps"].iloc[0])}]
    grid = rows.groupby("driver_id")["grid"].first().sort_values(kind="stable")
    events += [{"type": "position", "driver": d, "position": int(g)} for d, g in grid.items()]
    out = []
    for lap, at in rows.groupby("lap", sort=True):
        for s in stops[stops["lap"] == lap].itertuples():
            events.append({"type": "pit_in", "driver": s.driver_id, "lap": int(lap)})
            events.append({"type": "pit_out", "driver": s.driver_id, "lap": int(lap), "compound": "unknown"})
        for r in at.sort_values("position").itertuples():
            line = {"type": "lap", "driver": r.driver_id, "lap": int(lap), "position": int(r.position),
                    "lap_ms": ms(r.lap_time_ms), "gap_ms": ms(r.gap_s * 1000.0)}
            if r.position > 1 and not pd.isna(r.interval):
                line["interval_ms"] = ms(r.interval * 1000.0)
            events.append({k: v for k, v in line.items() if v is not None})
            out.append({"lap": int(lap), "driver": r.driver_id, "input": [float(v) for v in x.loc[r.Index]]})
    return {"events": events, "inputs": F.F1_INPUTS, "rows": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=evaluate.DEFAULT_DATA)
    ap.add_argument("--race", required=True, help="SEASON-ROUND, e.g. 2021-22 (2011 on: pit stops are in the tables)")
    args = ap.parse_args()
    season, rnd = (int(v) for v in args.race.split("-"))
    json.dump(race(evaluate.check_data(args.data), season, rnd), sys.stdout)


if __name__ == "__main__":
    main()
