"""Scores the shipped models the way the server runs them.

    python models/train/evaluate.py --report [--data ../shared/data]
        Every model on its hold-out, against its baseline and goal; rewrites the generated
        metrics section of models/README.md (between the `metrics:begin/end` markers).

    python models/train/evaluate.py nfl_wp ../shared/data/train/nfl_plays_2009_2018.csv
    python models/train/evaluate.py nba_wp states.csv [--cold-start]
    python models/train/evaluate.py nba_wp --pbp ../shared/data/nba --grid 3
    python models/train/evaluate.py soccer_xg shots.csv
    python models/train/evaluate.py f1_win ../shared/data/train [--seasons 2023-2024]
        One JSON line of metrics for any table in the training tables' format (F1: a directory
        holding `f1/` or the `f1/` directory itself; its races of `--seasons`, default all,
        against the position-only rate of every earlier season in `--data`).

Ties: a tied game (NFL `home_win` 0.5) is neither a home win nor a loss, so win-probability
scores leave its rows out and say how many games that was (`ties_excluded`); the Elo seeding
counts it as half a win, as the server does.

The data: `--data DIR`, else `OPENSPORTS_DATA`, else `../shared/data` beside the repo; a
missing directory is an error naming all three.

Pre-game strength is seeded as the server seeds it: Elo at the start of the table's first
season, from every earlier game of the training tables (the `ratings.py` rule), or
`models/ratings.json` when the table starts after them; `--cold-start` starts every team at 1500
instead. Win-probability models report calibration error from the home side (as published)
and, where the table says who has the ball, from the side with the ball. `--pbp DIR --grid S`
builds basketball states every S seconds of game clock from stats.nba.com playbyplayv2 files
(the 60 s grid of the training tables never samples the last 59 s of a period).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tomllib

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
import features as F  # noqa: E402

MODELS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(MODELS, "README.md")
DEFAULT_DATA = os.environ.get("OPENSPORTS_DATA", os.path.join(MODELS, "..", "..", "shared", "data"))


def check_data(data: str) -> str:
    """`data` if it holds the training tables, else a clear error."""
    if not os.path.isdir(train_dir(data)) or not glob.glob(os.path.join(train_dir(data), "*.csv")):
        sys.exit(f"evaluate.py: no training tables in {os.path.abspath(data)!r}: give --data DIR (the "
                 "directory holding train/, as ../shared/data) or set OPENSPORTS_DATA")
    return data


def drop_ties(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows of games not tied (`home_win` 0.5), and how many games were."""
    if "home_win" not in df:
        return df, 0
    tied = df["home_win"] == 0.5
    return df[~tied], int(df.loc[tied, "game_id"].nunique()) if tied.any() else 0


def manifest() -> dict[str, dict]:
    with open(os.path.join(MODELS, "manifest.toml"), "rb") as f:
        return {m["name"]: m for m in tomllib.load(f)["model"] if m.get("active", True)}


def run(name: str, x: pd.DataFrame) -> np.ndarray:
    """The shipped model on every row, batch 1 as the server runs it: one output column, or
    nfl_ep's expected points then class probabilities."""
    import onnxruntime as ort

    spec = manifest()[name]
    sess = ort.InferenceSession(os.path.join(MODELS, spec["file"]), providers=["CPUExecutionProvider"])
    values = x[spec["inputs"]].values.astype(np.float32)
    return np.vstack([sess.run(None, {"input": values[i : i + 1]})[0][0] for i in range(len(values))])


def train_dir(data: str) -> str:
    return os.path.join(data, "train") if os.path.isdir(os.path.join(data, "train")) else data


def nfl_games_all(data: str) -> pd.DataFrame:
    cols = ["game_id", "season", "home", "away", "home_win", "score_ok"]
    plays = pd.concat(pd.read_csv(f, usecols=cols, dtype={"game_id": str})
                      for f in sorted(glob.glob(os.path.join(train_dir(data), "nfl_plays_*.csv"))))
    return F.nfl_games(plays[plays["score_ok"] == 1])


def nba_games_all(data: str) -> pd.DataFrame:
    return pd.read_csv(os.path.join(train_dir(data), "nba_games.csv"), dtype={"game_id": str})


def seed_for(sport: str, first_season, data: str, cold: bool) -> dict[str, float] | None:
    """Ratings at the start of `first_season`, as the server would hold them (see module doc)."""
    if cold:
        return None
    games = nfl_games_all(data) if sport == "nfl" else nba_games_all(data)
    if first_season > games["season"].max():
        with open(os.path.join(MODELS, "ratings.json")) as f:
            return json.load(f)["football" if sport == "nfl" else "basketball"]["teams"]
    earlier = games[games["season"] < first_season]
    if not len(earlier):
        return None
    _, ratings, _ = F.elo_run(earlier, sport)
    return F.regress(ratings)


def wp_scores(name: str, x: pd.DataFrame, y: pd.Series, poss_home: np.ndarray | None) -> dict:
    p = run(name, x)[:, 0]
    m = F.metrics(y.values, p)
    m.update(F.side_calibration(y.values, p, poss_home if poss_home is not None else np.ones(len(p), bool)))
    if poss_home is None:
        m.pop("calibration_error_possession")
    return m


# --- basketball states on any grid from playbyplayv2 --------------------------------------

def pbp_states(path: str, grid: int) -> pd.DataFrame:
    """Game states every `grid` seconds of game clock (and at 0 s of each period) from one
    stats.nba.com playbyplayv2 file: the score in force at that instant."""
    with open(path) as f:
        sets = json.load(f)["resultSets"]
    s = next(r for r in sets if r["name"] == "PlayByPlay")
    h = {k: i for i, k in enumerate(s["headers"])}
    rows = s["rowSet"]
    home = next(r[h["PLAYER1_TEAM_ABBREVIATION"]] for r in rows if r[h["PERSON1TYPE"]] == 4)
    away = next(r[h["PLAYER1_TEAM_ABBREVIATION"]] for r in rows if r[h["PERSON1TYPE"]] == 5)
    changes = []  # (period, clock, home, away) after each scoring row
    periods = 4
    for r in rows:
        period = int(r[h["PERIOD"]])
        periods = max(periods, period)
        m, sec = r[h["PCTIMESTRING"]].split(":")
        clock = int(m) * 60 + int(sec)
        if r[h["SCORE"]]:
            a, hs = (int(v) for v in r[h["SCORE"]].split(" - "))
            changes.append((period, clock, hs, a))
    final_home, final_away = changes[-1][2], changes[-1][3]
    out = []
    for period in range(1, periods + 1):
        length = 720 if period <= 4 else 300
        for clock in range(length, -1, -grid):
            hs = aw = 0
            for (p, c, h_, a_) in changes:
                if (p, -c) <= (period, -clock):
                    hs, aw = h_, a_
            left = (4 - period) * 720 + clock if period <= 4 else clock
            out.append({"game_id": os.path.basename(path), "season": 0, "home": home, "away": away,
                        "period": period, "seconds_remaining_game": left, "score_home": hs, "score_away": aw,
                        "home_win": int(final_home > final_away)})
    return pd.DataFrame(out)


# --- the report ---------------------------------------------------------------------------

def report(data: str) -> str:
    tr = train_dir(data)
    lines = []
    row = lambda *c: lines.append("| " + " | ".join(str(v) for v in c) + " |")  # noqa: E731

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    # xG: World Cup 2022 shots, against StatsBomb's own xG on the same shots.
    shots = pd.read_csv(os.path.join(tr, "soccer_shots.csv"))
    test = (shots["competition"] == "FIFA World Cup") & (shots["season"].astype(str) == "2022")
    y = shots.loc[test, "goal"].astype(int).values
    sb = F.metrics(y, shots.loc[test, "ref_xg"].values)
    lines += ["| model | hold-out | metric | ours | baseline | goal | |", "|---|---|---|---|---|---|---|"]
    for name, fx in [("soccer_xg", F.xg_features), ("soccer_xg_geo", F.xg_geo_features)]:
        x, _ = fx(shots[test])
        m = F.metrics(y, run(name, x)[:, 0])
        rel = m["log_loss"] / sb["log_loss"] - 1
        goal = "within 1.5% of StatsBomb" if name == "soccer_xg" else "(geometry only: what live feeds carry)"
        ok = verdict(rel <= 0.015) if name == "soccer_xg" else ""
        where = " (each competition held out in turn: below)" if name == "soccer_xg" else ""
        row(name, f"WC 2022, {m['n']} shots{where}", "log loss", m["log_loss"], f"StatsBomb xG {sb['log_loss']}", goal,
            f"{rel:+.1%} {ok}")
        row("", "", "Brier / AUC / calibration", f"{m['brier']} / {m['auc']} / {m['calibration_error']}",
            f"{sb['brier']} / {sb['auc']} / {sb['calibration_error']}",
            "calibration no worse than StatsBomb" if name == "soccer_xg" else "",
            verdict(m["calibration_error"] <= sb["calibration_error"]) if name == "soccer_xg" else "")

    # NFL: season 2018, Elo carried over from 1998-2017 as the server's ratings.json carries it.
    plays = pd.concat([pd.read_csv(os.path.join(tr, f), dtype={"game_id": str})
                       for f in ["nfl_plays_1998_2008.csv", "nfl_plays_2009_2018.csv"]])
    plays_wp, _ = drop_ties(plays)
    x, yy, season = F.nfl_features(plays_wp)
    held = (season == 2018).values
    m = wp_scores("nfl_wp", x[held], yy[held], (x.loc[held, "possession_home"] > 0).values)
    n_ties = plays.loc[(plays["season"] == 2018) & (plays["home_win"] == 0.5), "game_id"].nunique()
    row("nfl_wp", f"season 2018, {m['n']} plays ({n_ties} tied games left out)", "log loss", m["log_loss"], "nflfastR ≈ 0.44 with the spread, 0.52 without",
        "≤ 0.43", verdict(m["log_loss"] <= 0.43))
    row("", "", "calibration error, side with the ball", m["calibration_error_possession"], "nflfastR 0.0055", "≤ 0.01",
        verdict(m["calibration_error_possession"] <= 0.01))
    row("", "", "calibration error, home side", m["calibration_error_home"], "", "≤ 0.02",
        verdict(m["calibration_error_home"] <= 0.02))
    row("", "", "mean predicted / actual home win (per play)", f"{m['mean_predicted_home']} / {m['mean_actual_home']}", "", "", "")
    row("", "", "Brier / AUC", f"{m['brier']} / {m['auc']}", "", "", "")

    x, yy, season = F.nfl_ep_features(plays)
    held = (season == 2018).values
    out = run("nfl_ep", x[held])
    m = F.multiclass_metrics(yy[held].values, out[:, 1:])
    prior = np.bincount(yy[~held], minlength=len(F.EP_CLASSES)) / (~held).sum()
    base = F.multiclass_metrics(yy[held].values, np.tile(prior, (held.sum(), 1)))
    row("nfl_ep", f"season 2018, {m['n']} plays", "7-class log loss", m["log_loss"], f"class frequencies {base['log_loss']}",
        "beat the frequencies", verdict(m["log_loss"] < base["log_loss"]))
    row("", "", "RMSE, expected vs next-score points", m["ep_rmse"], base["ep_rmse"], "", "")

    # NBA: season 2018 on the 60 s grid (the tables have no finer one).
    states = pd.concat([pd.read_csv(os.path.join(tr, f), dtype={"game_id": str})
                        for f in ["nba_states_1997_2008.csv", "nba_states_2009_2018.csv"]])
    x, yy, season = F.nba_features(states, nba_games_all(data))
    held = (season == 2018).values
    m = wp_scores("nba_wp", x[held], yy[held], None)
    row("nba_wp", f"season 2018, {m['n']} states (60 s grid)", "Brier", m["brier"], "py_ball 0.167 (3 s frames)",
        "≤ 0.152 on a 3 s grid", "**not measurable here**: the tables are on a 60 s grid")
    row("", "", "log loss / AUC / calibration (home)", f"{m['log_loss']} / {m['auc']} / {m['calibration_error_home']}", "", "", "")
    pbp = sorted(glob.glob(os.path.join(data, "nba", "nba_stats_playbyplayv2_*.json")))
    if pbp:
        st = pd.concat([pbp_states(f, 3) for f in pbp])
        seed = seed_for("nba", nba_games_all(data)["season"].max() + 1, data, False)
        x3, y3, _ = F.nba_features(st, seed=seed)
        p3 = run("nba_wp", x3)[:, 0]
        m3 = F.metrics(y3.values, p3)
        row("", f"3 s grid of {len(pbp)} game(s) in shared/data/nba", "Brier", m3["brier"], "", "",
            f"{m3['n']} states of one game: a check of the grid, not a measurement")

    # F1: seasons 2023-2024, normalized per lap, against the position-only rate.
    rows = F.f1_rows(tr)
    x = F.f1_features(rows)
    held = (rows["season"] >= 2023).values
    for name, label, total in [("f1_win", "win", 1.0), ("f1_podium", "podium", 3.0)]:
        h = rows[held]
        p = F.normalize_per_lap(h, run(name, x[held])[:, 0], total)
        m = F.f1_metrics(h, label, p)
        rate = rows[~held].groupby("position")[label].mean()
        b = F.f1_metrics(h, label, F.normalize_per_lap(h, h["position"].map(rate).fillna(0.0).to_numpy(), total))
        if label == "win":
            row(name, f"seasons 2023-2024, {m['laps']} laps", "race log loss (-log p of the winner, every lap)",
                m["winner_log_loss"], f"position alone {b['winner_log_loss']}", "≥ 10% below position alone",
                f"{m['winner_log_loss'] / b['winner_log_loss'] - 1:+.1%} "
                + verdict(m["winner_log_loss"] <= 0.9 * b["winner_log_loss"]))
        row(name if label == "podium" else "", f"{m['n']} driver-laps" if label == "podium" else "",
            "driver-lap log loss / Brier", f"{m['log_loss']} / {m['brier']}", f"{b['log_loss']} / {b['brier']}",
            "beat position alone", verdict(m["log_loss"] < b["log_loss"]))
        row("", "", "calibration error", m["calibration_error"], b["calibration_error"], "no worse than position alone",
            verdict(m["calibration_error"] <= b["calibration_error"]))
    return "\n".join(lines)


def f1_scores(name: str, where: str, seasons: str | None, data: str) -> dict:
    """`name` on the F1 races in `where` (of `seasons`), with the position-only baseline: the
    win (or podium) rate of each running position over every earlier season in `data`."""
    base_dir = os.path.dirname(where.rstrip("/")) if os.path.basename(where.rstrip("/")) == "f1" else where
    rows = F.f1_rows(base_dir)
    if seasons:
        lo, _, hi = seasons.partition("-")
        rows = rows[(rows["season"] >= int(lo)) & (rows["season"] <= int(hi or lo))]
    if not len(rows):
        sys.exit(f"evaluate.py: no F1 race laps in {where!r} for seasons {seasons or 'any'}")
    label, total = ("win", 1.0) if name == "f1_win" else ("podium", 3.0)
    rows = rows.reset_index(drop=True)
    p = F.normalize_per_lap(rows, run(name, F.f1_features(rows))[:, 0], total)
    m = F.f1_metrics(rows, label, p)
    history = F.f1_rows(train_dir(data))
    history = history[history["season"] < rows["season"].min()]
    if len(history):
        rate = history.groupby("position")[label].mean()
        b = F.f1_metrics(rows, label, F.normalize_per_lap(rows, rows["position"].map(rate).fillna(0.0).to_numpy(), total))
        m["position_only"] = b
    m["seasons"] = f"{int(rows['season'].min())}-{int(rows['season'].max())}"
    return m


def write_section(marker: str, body: str) -> None:
    """Replaces what lies between `<!-- MARKER:begin -->` and `<!-- MARKER:end -->` in
    models/README.md with `body`; an error when the markers are missing."""
    with open(README) as f:
        text = f.read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in text or end not in text:
        sys.exit(f"{README} has no {begin} ... {end} section")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(README, "w") as f:
        f.write(f"{head}{begin}\n\n{body.strip()}\n\n{end}{tail}")


def emit_table(marker: str, lines: list[str], write: bool) -> None:
    """Prints a generated table and, with `write`, puts it in its models/README.md section."""
    table = "\n".join(lines)
    print(table)
    if write:
        write_section(marker, table)


def write_readme(table: str) -> None:
    write_section("metrics", "_Generated by `python models/train/evaluate.py --report`; every figure is the shipped "
                  "`.onnx` run by onnxruntime on its hold-out, with pre-game ratings seeded as the server "
                  "seeds them._\n\n" + table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?")
    ap.add_argument("csv", nargs="?")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--cold-start", action="store_true", help="every team starts at Elo 1500")
    ap.add_argument("--report", action="store_true", help="every model on its hold-out; rewrites models/README.md")
    ap.add_argument("--pbp", help="directory of playbyplayv2 JSON files (nba_wp)")
    ap.add_argument("--grid", type=int, default=3, help="seconds between basketball states with --pbp")
    ap.add_argument("--seasons", help="F1: the seasons to score, e.g. 2023-2024 (default: all in the table)")
    args = ap.parse_args()
    args.data = check_data(args.data)
    if args.report:
        table = report(args.data)
        print(table)
        write_readme(table)
        print(f"wrote {README}", file=sys.stderr)
        return 0
    name = args.model
    specs = manifest()
    if name not in specs:
        print(f"unknown model {name!r}; shipped: {sorted(specs)}", file=sys.stderr)
        return 2
    if name in ("f1_win", "f1_podium"):
        if not args.csv:
            ap.error(f"{name} takes a directory holding f1/ (or the f1/ directory itself)")
        scores = f1_scores(name, args.csv, args.seasons, args.data)
        print(json.dumps({"model": name, "version": specs[name]["version"], **scores}))
        return 0
    if args.pbp:
        df = pd.concat([pbp_states(f, args.grid) for f in sorted(glob.glob(os.path.join(args.pbp, "*playbyplayv2*.json")))])
        df["season"] = nba_games_all(args.data)["season"].max() + 1
    elif args.csv:
        df = pd.read_csv(args.csv, dtype={"game_id": str})
    else:
        ap.error("give a CSV (or --pbp DIR for nba_wp, or --report)")
    if name in ("nfl_wp", "nba_wp"):
        sport = name[:3]
        seed = seed_for(sport, df["season"].min(), args.data, args.cold_start)
        df, ties = drop_ties(df)
        x, y, _ = F.nfl_features(df, seed) if sport == "nfl" else F.nba_features(df, seed=seed)
        poss = (x["possession_home"] > 0).values if sport == "nfl" else None
        scores = wp_scores(name, x, y, poss)
        scores["ties_excluded"] = ties
        scores["seeded"] = "cold start (1500)" if seed is None else f"{len(seed)} teams rated before season {df['season'].min()}"
    elif name == "nfl_ep":
        x, y, _ = F.nfl_ep_features(df)
        scores = F.multiclass_metrics(y.values, run(name, x)[:, 1:])
    elif name in ("soccer_xg", "soccer_xg_geo"):
        x, y = (F.xg_features if name == "soccer_xg" else F.xg_geo_features)(df)
        scores = F.metrics(y.values, run(name, x)[:, 0])
    else:
        print(f"{name}: no command-line scoring; use --report", file=sys.stderr)
        return 2
    print(json.dumps({"model": name, "version": specs[name]["version"], **scores}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
