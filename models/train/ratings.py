"""Seed ratings for the server: each team's Elo after the last game of the training tables,
regressed a third towards 1500 for the next season (the same rule as training), written to
models/ratings.json. The server loads it into its log on first start and keeps the ratings
current as games end.

    python models/train/ratings.py --data ../shared/data
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import pandas as pd

import features as F

MODELS = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def seed(ratings: dict[str, float]) -> dict[str, float]:
    return {t: round(1500.0 + (r - 1500.0) * 2.0 / 3.0, 1) for t, r in sorted(ratings.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(MODELS, "..", "..", "shared", "data"))
    args = ap.parse_args()
    train = os.path.join(args.data, "train")
    nba_games = pd.read_csv(os.path.join(train, "nba_games.csv"), dtype={"game_id": str})
    _, nba, nba_season = F.elo_run(nba_games, "nba")
    cols = ["game_id", "season", "home", "away", "home_win", "score_ok"]
    plays = pd.concat(
        pd.read_csv(f, usecols=cols, dtype={"game_id": str})
        for f in sorted(glob.glob(os.path.join(train, "nfl_plays_*.csv")))
    )
    _, nfl, nfl_season = F.elo_run(F.nfl_games(plays), "nfl")
    out = {
        "source": "Elo (K 20, home advantage 100 NBA / 55 NFL) over shared/data/train, regressed "
                  "a third towards 1500 for the season after the last one",
        "basketball": {"after_season": int(nba_season), "home_advantage": F.ELO_HOME["nba"], "k": F.ELO_K["nba"], "teams": seed(nba)},
        "football": {"after_season": int(nfl_season), "home_advantage": F.ELO_HOME["nfl"], "k": F.ELO_K["nfl"], "teams": seed(nfl)},
    }
    path = os.path.join(MODELS, "ratings.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(nba)} NBA teams, {len(nfl)} NFL teams")


if __name__ == "__main__":
    main()
