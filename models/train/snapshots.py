"""Our nfl_wp on nflfastR's fixed test states (shared/data/nfl/nflfastR_snap_wp.csv), side by
side with nflfastR's own outputs. nflfastR's `wp` has no team strength (home field only): ours at
elo_diff = 55 (home advantage, equal teams). Its `vegas_wp` uses the betting spread: ours at
elo_diff = 25 x spread (the usual Elo-to-points rule), since our model takes Elo, not a spread.
Then our nfl_ep on nflfastR's expected-points states (nflfastR_snap_ep.csv): expected points
and each next-score class, side by side.

    python models/train/snapshots.py --data ../shared/data
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd

MODELS = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def features(row, elo: float) -> list[float]:
    t = min(max(row.game_seconds_remaining, 0), 3600) / 3600.0
    diff = float(row.score_differential) * (1 if row.posteam == row.home_team else -1)
    poss = 1.0 if row.posteam == row.home_team else -1.0
    e = elo / 400.0
    return [t, diff / 14.0, diff / np.sqrt(t * 60.0 + 1.0), poss, poss * (50.0 - row.yardline_100) / 50.0,
            poss * row.down / 4.0, poss * min(row.ydstogo, 30) / 10.0, e, e * t]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(MODELS, "..", "..", "shared", "data"))
    args = ap.parse_args()
    import onnxruntime as ort

    sess = ort.InferenceSession(os.path.join(MODELS, "nfl_wp.onnx"), providers=["CPUExecutionProvider"])
    run = lambda f: float(sess.run(["prob"], {"input": np.array([f], dtype=np.float32)})[0][0, 0])  # noqa: E731
    snap = pd.read_csv(os.path.join(args.data, "nfl", "nflfastR_snap_wp.csv"))
    print("| state | spread | nflfastR wp | ours (elo 55) | nflfastR vegas_wp | ours (elo 25 x spread) |")
    print("|---|---|---|---|---|---|")
    for row in snap.itertuples(index=False):
        state = f"{row.posteam} ball, {row.down}&{row.ydstogo} at own {100 - row.yardline_100}, {row.game_seconds_remaining} s left, diff {row.score_differential}"
        print(f"| {state} | {row.spread_line} | {row.wp:.4f} | {run(features(row, 55.0)):.4f} | "
              f"{row.vegas_wp:.4f} | {run(features(row, 25.0 * row.spread_line)):.4f} |")

    ep = ort.InferenceSession(os.path.join(MODELS, "nfl_ep.onnx"), providers=["CPUExecutionProvider"])
    snap = pd.read_csv(os.path.join(args.data, "nfl", "nflfastR_snap_ep.csv"))
    classes = ["td", "opp_td", "fg", "opp_fg", "safety", "opp_safety", "no_score"]
    print()
    print("| state | | ep | " + " | ".join(classes) + " |")
    print("|---|---|---|" + "---|" * len(classes))
    for row in snap.drop_duplicates(subset=["half_seconds_remaining", "yardline_100", "down", "ydstogo", "posteam", "home_team"]).itertuples(index=False):
        home = 1.0 if row.posteam == row.home_team else 0.0
        f = [min(row.half_seconds_remaining, 1800) / 1800.0, row.yardline_100 / 100.0] + \
            [1.0 if row.down == d else 0.0 for d in (1, 2, 3, 4)] + \
            [min(row.ydstogo, 30) / 10.0, 1.0 if row.ydstogo >= row.yardline_100 else 0.0, home]
        out = ep.run(None, {"input": np.array([f], dtype=np.float32)})[0][0]
        state = f"{row.down}&{row.ydstogo} at own {100 - row.yardline_100}, {row.half_seconds_remaining} s left in the half"
        theirs = [getattr(row, f"{c}_prob") for c in classes]
        print(f"| {state} | nflfastR | {row.ep:.3f} | " + " | ".join(f"{v:.4f}" for v in theirs) + " |")
        print(f"| | ours | {out[0]:.3f} | " + " | ".join(f"{v:.4f}" for v in out[1:]) + " |")


if __name__ == "__main__":
    main()
