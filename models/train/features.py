"""Feature derivation shared by training and evaluation.

Every feature is derived from the CSV columns alone (the training tables' format), including
pre-game team strength: an Elo rating computed from the results of *earlier* games in the same
file, in game order, so a table the model has never seen can be scored the same way.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ELO_K = {"nfl": 20.0, "nba": 20.0}
ELO_HOME = {"nfl": 55.0, "nba": 100.0}


def elo_run(games: pd.DataFrame, sport: str, seed: dict[str, float] | None = None) -> tuple[pd.Series, dict[str, float], object]:
    """Runs Elo over `games` in game order.

    `seed`: ratings at the start of the first season in `games` (already regressed for that
    season, as `models/ratings.json` holds them); teams not in it start at 1500.

    `games`: one row per game with game_id, season, home, away, home_win, in any order; games are
    processed by season, then game_id (ids are date-ordered within a season; NBA ids wrap at
    the century, 0029900001 is 1999-2000 and 0020000001 is 2000-01). Ratings regress a third
    towards 1500 between seasons. Returns home minus away Elo (home advantage included) before
    each game, the ratings after the last game, and the last season.
    """
    k, hfa = ELO_K[sport], ELO_HOME[sport]
    ratings: dict[str, float] = dict(seed or {})
    first = games["season"].min() if len(games) else None
    season_of: dict[str, object] = {t: first for t in ratings}
    out = {}
    last_season = None
    for row in games.sort_values(["season", "game_id"]).itertuples(index=False):
        for team in (row.home, row.away):
            r = ratings.get(team, 1500.0)
            if season_of.get(team) not in (None, row.season):
                r = 1500.0 + (r - 1500.0) * 2.0 / 3.0
            ratings[team] = r
            season_of[team] = row.season
        last_season = row.season
        diff = ratings[row.home] + hfa - ratings[row.away]
        out[row.game_id] = diff
        expected = 1.0 / (1.0 + 10 ** (-diff / 400.0))
        delta = k * (float(row.home_win) - expected)
        ratings[row.home] += delta
        ratings[row.away] -= delta
    return pd.Series(out, name="elo_diff"), ratings, last_season


def elo_before(games: pd.DataFrame, sport: str, seed: dict[str, float] | None = None) -> pd.Series:
    """Home minus away Elo (home advantage included) before each game (see `elo_run`)."""
    return elo_run(games, sport, seed)[0]


def regress(ratings: dict[str, float]) -> dict[str, float]:
    """Ratings after a season, a third of the way back to 1500 for the next one (ratings.json)."""
    return {t: round(1500.0 + (r - 1500.0) * 2.0 / 3.0, 1) for t, r in sorted(ratings.items())}


def nfl_games(plays: pd.DataFrame) -> pd.DataFrame:
    """One row per NFL game (game_id, season, home, away, home_win) from the plays table."""
    return plays.groupby("game_id").first()[["season", "home", "away", "home_win"]].reset_index()


NFL_INPUTS = [
    "time_left", "score_diff", "score_diff_over_time", "possession_home", "field_position",
    "down", "distance", "elo_diff", "elo_diff_time",
]


def nfl_features(plays: pd.DataFrame, seed: dict[str, float] | None = None) -> pd.DataFrame:
    """Home-perspective features for each NFL play (see models/README.md); Elo seeded with
    `seed` (see `elo_run`)."""
    plays = plays[plays["score_ok"] == 1].dropna(subset=["game_seconds_remaining", "yardline_100"])
    elo = elo_before(nfl_games(plays), "nfl", seed)
    p = plays
    t = p["game_seconds_remaining"].clip(0, 3600) / 3600.0
    diff = (p["score_home"] - p["score_away"]).astype(float)
    poss = np.where(p["posteam_is_home"] == 1, 1.0, -1.0)
    e = p["game_id"].map(elo).astype(float) / 400.0
    x = pd.DataFrame({
        "time_left": t,
        "score_diff": diff / 14.0,
        "score_diff_over_time": diff / np.sqrt(t * 60.0 + 1.0),
        "possession_home": poss,
        "field_position": poss * (50.0 - p["yardline_100"]) / 50.0,
        "down": poss * p["down"].fillna(1.0) / 4.0,
        "distance": poss * p["ydstogo"].fillna(10.0).clip(0, 30) / 10.0,
        "elo_diff": e,
        "elo_diff_time": e * t,
    })
    return x, p["home_win"].astype(int), p["season"]


NBA_INPUTS = ["time_left", "score_diff", "score_diff_over_time", "elo_diff", "elo_diff_time"]


def nba_features(states: pd.DataFrame, games: pd.DataFrame | None = None,
                 seed: dict[str, float] | None = None) -> pd.DataFrame:
    """Home-perspective features for each NBA game state. Elo comes from `games` (one row per
    game) when given, else from the states' own final results; seeded with `seed`."""
    if games is None:
        games = states.groupby("game_id").first()[["season", "home", "away", "home_win"]].reset_index()
    elo = elo_before(games, "nba", seed)
    t = states["seconds_remaining_game"].clip(0, 2880) / 2880.0
    diff = (states["score_home"] - states["score_away"]).astype(float)
    e = states["game_id"].map(elo).fillna(0.0).astype(float) / 400.0
    x = pd.DataFrame({
        "time_left": t,
        "score_diff": diff / 10.0,
        "score_diff_over_time": diff / np.sqrt(t * 48.0 + 0.5),
        "elo_diff": e,
        "elo_diff_time": e * t,
    })
    return x, states["home_win"].astype(int), states["season"]


XG_INPUTS = [
    "distance_m", "angle_rad", "header", "other_body_part", "free_kick", "corner_or_kickoff",
    "under_pressure", "first_time", "open_goal", "deflected", "follows_dribble",
    "n_opponents_in_cone", "nearest_opponent_dist", "gk_dist_to_goal_center",
    # Shape terms and the StatsBomb technique / play pattern (version 2).
    "log_distance", "distance_x_angle", "inv_distance", "angle_sq", "open_goal_x_distance",
    "gk_dist_over_distance", "header_x_distance",
    "technique_volley", "technique_half_volley", "technique_lob", "technique_overhead_kick",
    "technique_diving_header", "technique_backheel",
    "from_counter", "from_corner", "from_free_kick", "from_throw_in", "from_goal_kick", "from_keeper",
    "from_kick_off", "from_other",
]
TECHNIQUES = {"Volley": "technique_volley", "Half Volley": "technique_half_volley", "Lob": "technique_lob",
              "Overhead Kick": "technique_overhead_kick", "Diving Header": "technique_diving_header",
              "Backheel": "technique_backheel"}
PLAY_PATTERNS = {"From Counter": "from_counter", "From Corner": "from_corner", "From Free Kick": "from_free_kick",
                 "From Throw In": "from_throw_in", "From Goal Kick": "from_goal_kick", "From Keeper": "from_keeper",
                 "From Kick Off": "from_kick_off", "Other": "from_other"}


def xg_features(shots: pd.DataFrame) -> pd.DataFrame:
    x = pd.DataFrame({
        "distance_m": shots["distance_m"],
        "angle_rad": shots["angle_rad"],
        "header": (shots["body_part"] == "head").astype(float),
        "other_body_part": (shots["body_part"] == "other").astype(float),
        "free_kick": (shots["shot_type"] == "free_kick").astype(float),
        "corner_or_kickoff": shots["shot_type"].isin(["corner", "kick_off"]).astype(float),
        "under_pressure": shots["under_pressure"].astype(float),
        "first_time": shots["first_time"].astype(float),
        "open_goal": shots["open_goal"].astype(float),
        "deflected": shots["deflected"].astype(float),
        "follows_dribble": shots["follows_dribble"].astype(float),
        "n_opponents_in_cone": shots["n_opponents_in_cone"].clip(0, 8),
        "nearest_opponent_dist": shots["nearest_opponent_dist"].fillna(10.0).clip(0, 10),
        "gk_dist_to_goal_center": shots["gk_dist_to_goal_center"].fillna(0.0).clip(0, 30),
    }).fillna(0.0)
    d = shots["distance_m"].astype(float)
    x["log_distance"] = np.log1p(d)
    x["distance_x_angle"] = d * shots["angle_rad"]
    x["inv_distance"] = 1.0 / (1.0 + d)
    x["angle_sq"] = shots["angle_rad"] ** 2
    x["open_goal_x_distance"] = x["open_goal"] * d
    x["gk_dist_over_distance"] = x["gk_dist_to_goal_center"] / (1.0 + d)
    x["header_x_distance"] = x["header"] * d
    for value, col in TECHNIQUES.items():
        x[col] = (shots["technique"] == value).astype(float)
    for value, col in PLAY_PATTERNS.items():
        x[col] = (shots["play_pattern"] == value).astype(float)
    return x.fillna(0.0), shots["goal"].astype(int)


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Log loss, Brier, AUC and calibration error (bins of 0.05, weighted by count)."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    y = np.asarray(y, dtype=int)
    ece = calibration_error(y, p)
    return {
        "n": int(len(y)),
        "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 5),
        "brier": round(float(brier_score_loss(y, p)), 5),
        "auc": round(float(roc_auc_score(y, p)), 5) if len(set(y)) > 1 else None,
        "calibration_error": round(float(ece), 5),
    }


def calibration_error(y: np.ndarray, p: np.ndarray) -> float:
    """Mean |predicted - observed| over bins of 0.05, weighted by count."""
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    y = np.asarray(y, dtype=float)
    bins = np.minimum((p / 0.05).astype(int), 19)
    return float(sum((bins == b).sum() / len(p) * abs(p[bins == b].mean() - y[bins == b].mean())
                     for b in range(20) if (bins == b).any()))


def side_calibration(y_home: np.ndarray, p_home: np.ndarray, poss_home: np.ndarray) -> dict:
    """Calibration error of a home win probability read from the home side (as published) and
    from the side with the ball (p and the outcome flipped when the away team has it): the
    second does not let home-side errors cancel against away-side ones."""
    flip = ~np.asarray(poss_home, dtype=bool)
    y_pos = np.where(flip, 1 - np.asarray(y_home), y_home)
    p_pos = np.where(flip, 1 - np.asarray(p_home), p_home)
    return {
        "calibration_error_home": round(calibration_error(y_home, p_home), 5),
        "calibration_error_possession": round(calibration_error(y_pos, p_pos), 5),
        "mean_predicted_home": round(float(np.mean(p_home)), 4),
        "mean_actual_home": round(float(np.mean(y_home)), 4),
    }


XG_GEO_INPUTS = ["distance_m", "angle_rad", "header", "other_body_part", "free_kick", "corner_or_kickoff"]


def xg_geo_features(shots: pd.DataFrame) -> pd.DataFrame:
    """The geometry-only variant, for feeds without freeze frames (what a live feed has)."""
    x, y = xg_features(shots)
    return x[XG_GEO_INPUTS], y


# Next-score classes for nfl_ep, from the possession team's side, and their point values
# (nflfastR's convention: a touchdown counts 7).
EP_CLASSES = ["td", "opp_td", "fg", "opp_fg", "safety", "opp_safety", "no_score"]
EP_POINTS = [7.0, -7.0, 3.0, -3.0, 2.0, -2.0, 0.0]
EP_INPUTS = ["half_seconds", "yardline", "down1", "down2", "down3", "down4", "distance", "goal_to_go", "home"]


def nfl_next_score(plays: pd.DataFrame) -> pd.Series:
    """The next score in the same half after each play, as an index into EP_CLASSES.

    Scores are seen as changes of (score_home, score_away) between consecutive plays of a game;
    a change first seen at the next half's first play happened in this half (its last play).
    The first change decides (a touchdown shows as +6 before its try). Nothing after the last
    play of a game is visible, so a score on a game's very last play counts as no score.
    """
    p = plays
    half = np.where(p["qtr"] <= 2, 1, np.where(p["qtr"] <= 4, 2, 3))
    home = p["score_home"].to_numpy()
    away = p["score_away"].to_numpy()
    gid = p["game_id"].to_numpy()
    posteam_home = (p["posteam_is_home"] == 1).to_numpy()
    n = len(p)
    label = np.full(n, EP_CLASSES.index("no_score"))
    kinds = {6: "td", 7: "td", 8: "td", 3: "fg", 2: "safety"}
    nxt = None  # (kind, home scored) of the next score after play i, walking backwards
    for i in range(n - 1, -1, -1):
        j = i + 1
        if j == n or gid[j] != gid[i]:
            nxt = None
        elif home[j] != home[i] or away[j] != away[i]:
            dh, da = home[j] - home[i], away[j] - away[i]
            kind = kinds.get(int(max(dh, da)))
            if kind is not None and (dh <= 0 or da <= 0):
                nxt = (kind, dh > 0)
        elif half[j] != half[i]:
            nxt = None
        if nxt is not None:
            kind, home_scored = nxt
            label[i] = EP_CLASSES.index(kind if home_scored == posteam_home[i] else f"opp_{kind}")
    return pd.Series(label, index=p.index, name="next_score")


def nfl_ep_features(plays: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Possession-side features for expected points before each play (regulation only), the
    next-score class and the season. Plays keep the table's order within a game."""
    p = plays.dropna(subset=["game_seconds_remaining", "yardline_100", "down"])
    p = p[(p["score_ok"] == 1) & (p["qtr"] <= 4)]
    p = p.sort_values(["game_id"], kind="stable").reset_index(drop=True)
    y = nfl_next_score(p)
    half_s = np.where(p["qtr"] <= 2, p["game_seconds_remaining"] - 1800, p["game_seconds_remaining"]).clip(0, 1800)
    down = p["down"].astype(int)
    dist = p["ydstogo"].clip(0, 30)
    x = pd.DataFrame({
        "half_seconds": half_s / 1800.0,
        "yardline": p["yardline_100"] / 100.0,
        "down1": (down == 1).astype(float),
        "down2": (down == 2).astype(float),
        "down3": (down == 3).astype(float),
        "down4": (down == 4).astype(float),
        "distance": dist / 10.0,
        "goal_to_go": (p["ydstogo"] >= p["yardline_100"]).astype(float),
        "home": (p["posteam_is_home"] == 1).astype(float),
    }, index=p.index)
    return x, y, p["season"]


def multiclass_metrics(y: np.ndarray, probs: np.ndarray) -> dict:
    """Multiclass log loss, and the RMSE of expected points against the next score's points."""
    from sklearn.metrics import log_loss

    probs = np.clip(probs, 1e-7, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    pts = np.asarray(EP_POINTS)
    ep = probs @ pts
    actual = pts[np.asarray(y, dtype=int)]
    return {
        "n": int(len(y)),
        "log_loss": round(float(log_loss(y, probs, labels=list(range(len(EP_CLASSES))))), 5),
        "ep_rmse": round(float(np.sqrt(np.mean((ep - actual) ** 2))), 4),
        "ep_mean": round(float(ep.mean()), 4),
        "points_mean": round(float(actual.mean()), 4),
    }


# F1 race model: one row per driver per completed lap, from the driver's side. The server
# derives the same inputs from its timing state (server/src/pipeline/winprob.rs, `f1_features`).
F1_INPUTS = [
    "position", "inv_position", "gap", "gap_per_lap_left", "margin", "frac_left", "laps_left",
    "pit_stops", "grid",
    # Version 2 (issue 35): tyre age, a stop still owed, the gap to the car behind, a neutralised
    # field (safety car) and the car's pace, all from the timing the server keeps.
    "tyre_age", "no_stop", "behind", "field_slow", "pace",
]
# Caps, in seconds, for the time gaps (a lapped car's gap is its time behind at the same lap).
F1_GAP_CAP_S = 120.0
F1_MARGIN_CAP_S = 60.0
# The car's pace: the median of its last F1_PACE_LAPS lap times against the field's median of
# the same, capped at F1_PACE_CAP_S either way.
F1_PACE_LAPS = 3
F1_PACE_CAP_S = 5.0


def f1_rows(data: str) -> pd.DataFrame:
    """Lap rows of every race with pit-stop data (2011 on) joined with what the live timing
    state has at that lap: cumulative-time gap to the leader, gap to the car ahead (for the
    leader: minus its lead over the second car) and to the car behind, pit stops made and the lap
    of the last one, grid slot, race distance, the field's slowness and the car's pace (see
    `f1_lap_times`); plus the labels `win` and `podium` from the classified result."""
    import os

    f1 = os.path.join(data, "f1")
    laps = pd.read_csv(os.path.join(f1, "f1_laps.csv.gz")).dropna(subset=["position"])
    laps = laps[laps["season"] >= 2011].copy()
    res = pd.read_csv(os.path.join(f1, "f1_results.csv.gz"))
    stops = pd.read_csv(os.path.join(f1, "f1_pitstops.csv.gz"))
    key = ["season", "round"]
    laps = laps.sort_values(key + ["driver_id", "lap"])
    laps["cum_ms"] = laps.groupby(key + ["driver_id"])["lap_time_ms"].cumsum()
    leader = laps[laps["position"] == 1][key + ["lap", "cum_ms"]].rename(columns={"cum_ms": "leader_ms"})
    leader = leader.drop_duplicates(subset=key + ["lap"])
    laps = laps.merge(leader, on=key + ["lap"], how="inner")
    laps["gap_s"] = ((laps["cum_ms"] - laps["leader_ms"]) / 1000.0).clip(0, F1_GAP_CAP_S)
    # Gap to the car ahead at the same lap; the leader's is minus its lead over second place.
    laps = laps.sort_values(key + ["lap", "position"])
    ahead = laps.groupby(key + ["lap"])["gap_s"].shift(1)
    second = laps[laps["position"] == 2][key + ["lap", "gap_s"]].rename(columns={"gap_s": "second_gap"})
    laps = laps.assign(interval=laps["gap_s"] - ahead).merge(second.drop_duplicates(subset=key + ["lap"]),
                                                             on=key + ["lap"], how="left")
    laps["margin_s"] = np.where(laps["position"] == 1, -laps["second_gap"].fillna(0.0), laps["interval"].fillna(0.0))
    laps["margin_s"] = laps["margin_s"].clip(-F1_MARGIN_CAP_S, F1_MARGIN_CAP_S)
    # Gap to the car behind (its interval); the last car's is the cap.
    laps["behind_s"] = laps.groupby(key + ["lap"])["interval"].shift(-1)
    laps["behind_s"] = laps["behind_s"].fillna(F1_MARGIN_CAP_S).clip(0, F1_MARGIN_CAP_S)
    # Pit stops completed by the end of the lap, and the lap of the last one (tyre age).
    stops = stops.sort_values(key + ["driver_id", "lap"])
    laps = laps.sort_values("lap")
    stops = stops.sort_values("lap").assign(stint_lap=stops["lap"])
    counted = pd.merge_asof(laps, stops[key + ["driver_id", "lap", "stop", "stint_lap"]], on="lap",
                            by=key + ["driver_id"], direction="backward")
    laps = counted.rename(columns={"stop": "pit_stops"})
    laps["pit_stops"] = laps["pit_stops"].fillna(0.0)
    laps["stint_lap"] = laps["stint_lap"].fillna(0.0)
    laps = f1_lap_times(laps, key)
    winner = res[res["position"] == 1][key + ["laps"]].rename(columns={"laps": "total_laps"})
    res = res[key + ["driver_id", "grid", "position"]].rename(columns={"position": "finish"})
    laps = laps.merge(res, on=key + ["driver_id"], how="left").merge(winner, on=key, how="inner")
    laps["grid"] = laps["grid"].fillna(0.0).replace(0.0, 21.0).clip(1, 21)
    laps["laps_left"] = (laps["total_laps"] - laps["lap"]).clip(0, None)
    laps["win"] = (laps["finish"] == 1).astype(int)
    laps["podium"] = (laps["finish"] <= 3).astype(int)
    return laps.sort_values(key + ["lap", "position"]).reset_index(drop=True)


def f1_lap_times(laps: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Adds `field_slow` (the median over the cars of this lap's time over the car's best so
    far, minus 1, in 0..1: about 0.4 under a safety car) and `pace_s` (the median of the car's
    last F1_PACE_LAPS lap times minus the field's median of the same, in seconds)."""
    laps = laps.sort_values(key + ["driver_id", "lap"])
    by_car = laps.groupby(key + ["driver_id"])["lap_time_ms"]
    slow = (laps["lap_time_ms"] / by_car.cummin() - 1.0).clip(0, 1)
    recent = by_car.transform(lambda s: s.rolling(F1_PACE_LAPS, min_periods=1).median())
    laps = laps.assign(slow=slow, recent_ms=recent)
    by_lap = laps.groupby(key + ["lap"])
    laps["field_slow"] = by_lap["slow"].transform("median").fillna(0.0)
    laps["pace_s"] = ((laps["recent_ms"] - by_lap["recent_ms"].transform("median")) / 1000.0).fillna(0.0)
    laps["pace_s"] = laps["pace_s"].clip(-F1_PACE_CAP_S, F1_PACE_CAP_S)
    return laps.drop(columns=["slow", "recent_ms"])


def f1_features(rows: pd.DataFrame) -> pd.DataFrame:
    """F1_INPUTS for each lap row (see `f1_rows`)."""
    pos = rows["position"].clip(1, 24).astype(float)
    left = rows["laps_left"].astype(float)
    total = rows["total_laps"].clip(1, None).astype(float)
    return pd.DataFrame({
        "position": pos / 20.0,
        "inv_position": 1.0 / pos,
        "gap": rows["gap_s"] / 60.0,
        "gap_per_lap_left": (rows["gap_s"] / (left + 1.0)).clip(0, 30.0),
        "margin": rows["margin_s"] / 10.0,
        "frac_left": left / total,
        "laps_left": left / 50.0,
        "pit_stops": rows["pit_stops"].clip(0, 6).astype(float),
        "grid": rows["grid"].astype(float) / 20.0,
        "tyre_age": (rows["lap"] - rows["stint_lap"]).clip(0, 60).astype(float) / 30.0,
        "no_stop": (rows["pit_stops"] == 0).astype(float),
        "behind": rows["behind_s"] / 10.0,
        "field_slow": rows["field_slow"].astype(float),
        "pace": rows["pace_s"] / F1_PACE_CAP_S,
    }, index=rows.index)


def normalize_per_lap(rows: pd.DataFrame, p: np.ndarray, total: float) -> np.ndarray:
    """Scales one lap's raw probabilities to sum to `total` (1 for the win, 3 for a podium; at
    most the number of cars), each capped at 1: what the server publishes."""
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1.0)
    groups = rows.groupby(["season", "round", "lap"]).ngroup().to_numpy()
    sums = np.bincount(groups, weights=p)
    counts = np.bincount(groups)
    target = np.minimum(total, counts)
    return np.clip(p * (target / sums)[groups], 1e-6, 1.0)


def f1_metrics(rows: pd.DataFrame, label: str, p: np.ndarray) -> dict:
    """Driver-row log loss, Brier and calibration error of normalized probabilities, plus for
    the win the race log loss: the mean of -log p(eventual winner) over every lap."""
    m = metrics(rows[label].to_numpy(), p)
    if label == "win":
        won = rows[label].to_numpy() == 1
        m["winner_log_loss"] = round(float(-np.log(np.clip(p[won], 1e-6, 1)).mean()), 5)
        m["laps"] = int(won.sum())
    return m
