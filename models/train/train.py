"""Trains the shipped models on the real tables in shared/data/train and writes
models/<name>.onnx, models/manifest.toml and models/testdata/<name>.json (fixed inputs with
onnxruntime's outputs, checked against tract by the Rust tests).

    python models/train/train.py [--data ../shared/data/train]

Models are small MLPs (or a logistic regression) on engineered features; they are exported
with plain ONNX ops (Gemm, Relu, Sigmoid; opset 17) built from the fitted weights, with the
standardization folded in, so tract runs them without the ai.onnx.ml domain.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import tomllib

import numpy as np
import pandas as pd
import onnx
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(__file__))
import features as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
OPSET = 17


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export(name: str, scaler: StandardScaler, layers: list[tuple[np.ndarray, np.ndarray]], n_in: int,
           points: list[float] | None = None) -> bytes:
    """Gemm/Relu stack; input `input` [1, n_in] float.

    Binary models end in Sigmoid: output `prob` [1, 1]. With `points` (one value per class) the
    stack ends in Softmax and the output `ep` [1, 1 + classes] is the expected points (the class
    probabilities times `points`) followed by the class probabilities."""
    mean, scale = scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)
    w0, b0 = layers[0]
    # Fold (x - mean) / scale into the first layer.
    w0f = w0 / scale[:, None]
    b0f = b0 - (mean / scale) @ w0
    layers = [(w0f, b0f)] + layers[1:]
    nodes, inits = [], []
    cur = "input"
    for i, (w, b) in enumerate(layers):
        wn, bn, out = f"w{i}", f"b{i}", f"h{i}"
        inits.append(helper.make_tensor(wn, TensorProto.FLOAT, w.shape, w.astype(np.float32).ravel().tolist()))
        inits.append(helper.make_tensor(bn, TensorProto.FLOAT, b.shape, b.astype(np.float32).ravel().tolist()))
        nodes.append(helper.make_node("Gemm", [cur, wn, bn], [out]))
        cur = out
        if i + 1 < len(layers):
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    if points is None:
        nodes.append(helper.make_node("Sigmoid", [cur], ["prob"]))
        output = helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1])
    else:
        inits.append(helper.make_tensor("points", TensorProto.FLOAT, [len(points), 1], points))
        nodes.append(helper.make_node("Softmax", [cur], ["probs"], axis=1))
        nodes.append(helper.make_node("MatMul", ["probs", "points"], ["expected"]))
        nodes.append(helper.make_node("Concat", ["expected", "probs"], ["ep"], axis=1))
        output = helper.make_tensor_value_info("ep", TensorProto.FLOAT, [1, 1 + len(points)])
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n_in])], [output], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="opensports-train")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def fit_mlp(x: pd.DataFrame, y: pd.Series, hidden: tuple[int, ...], seed: int = 7, multiclass: bool = False):
    """Returns the scaler, the layers and a predictor (P(positive), or every class's P)."""
    scaler = StandardScaler().fit(x.values)
    clf = MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-4, batch_size=1024, max_iter=25,
                        early_stopping=True, n_iter_no_change=4, random_state=seed)
    clf.fit(scaler.transform(x.values), y.values)
    layers = list(zip([w.astype(np.float64) for w in clf.coefs_], [b.astype(np.float64) for b in clf.intercepts_]))
    if multiclass:
        return scaler, layers, lambda xx: clf.predict_proba(scaler.transform(xx.values))
    return scaler, layers, lambda xx: clf.predict_proba(scaler.transform(xx.values))[:, 1]


def fit_mlp_ensemble(x: pd.DataFrame, y: pd.Series, hidden: tuple[int, ...], seeds: tuple[int, ...]):
    """MLPs of the same shape fitted with several seeds, folded into one wider network whose
    output is the mean of their logits: the first layers side by side, the hidden ones block-
    diagonal, the output averaged. Still a plain Gemm/Relu stack (the server's direct path)."""
    from scipy.linalg import block_diag

    fits = [fit_mlp(x, y, hidden, seed=s) for s in seeds]
    scaler, k = fits[0][0], len(fits)
    depth = len(fits[0][1])
    layers = []
    for i in range(depth):
        ws, bs = [f[1][i][0] for f in fits], [f[1][i][1] for f in fits]
        if i == 0:
            layers.append((np.hstack(ws), np.concatenate(bs)))
        elif i < depth - 1:
            layers.append((block_diag(*ws), np.concatenate(bs)))
        else:
            layers.append((np.vstack(ws) / k, np.mean(bs, axis=0)))

    def predict(xx):
        return sigmoid(np.mean([logit(f[2](xx), eps=1e-12) for f in fits], axis=0))

    return scaler, layers, predict


def fit_lr(x: pd.DataFrame, y: pd.Series, c: float = 1.0):
    scaler = StandardScaler().fit(x.values)
    clf = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x.values), y.values)
    layers = [(clf.coef_.T.astype(np.float64), clf.intercept_.astype(np.float64))]
    return scaler, layers, lambda xx: clf.predict_proba(scaler.transform(xx.values))[:, 1]


def ort_check(name: str, onnx_bytes: bytes, x: pd.DataFrame, want: np.ndarray) -> list:
    """Scores a fixed table with onnxruntime, checks it against scikit-learn's `want` (one value
    or one row of outputs per input) and returns rows for models/testdata/<name>.json."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rows = []
    for i in range(len(x)):
        inp = x.values[i : i + 1].astype(np.float32)
        out = sess.run(None, {"input": inp})[0][0]
        w = np.atleast_1d(want[i])
        assert np.allclose(out, w, atol=1e-4), (name, i, out, w)
        row = {"input": [float(v) for v in inp[0]]}
        if len(out) == 1:
            row["prob"] = float(out[0])
        else:
            row["outputs"] = [float(v) for v in out]
        rows.append(row)
    return rows


def save(name: str, version: str, onnx_bytes: bytes, inputs: list[str], source: str, holdout: str, metrics: dict,
         anchor: dict | None, table: list, outputs: list[str] | None = None) -> dict:
    outputs = outputs or ["prob"]
    path = os.path.join(MODELS, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onnx_bytes)
    os.makedirs(os.path.join(MODELS, "testdata"), exist_ok=True)
    with open(os.path.join(MODELS, "testdata", f"{name}.json"), "w") as f:
        json.dump({"model": name, "inputs": inputs, "rows": table}, f, indent=0)
    return {
        "name": name, "version": version, "file": f"{name}.onnx",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "inputs": inputs, "input_shape": [1, len(inputs)], "outputs": outputs, "output_shape": [1, len(outputs)],
        "source": source, "holdout": holdout, "metrics": metrics, "anchor": anchor or {},
    }


def toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def write_manifest(entries: list[dict]) -> None:
    lines = ["# Shipped ONNX models. Written by models/train/train.py; the server checks file, sha256 and shapes.", ""]
    for e in entries:
        lines.append("[[model]]")
        for k in ["name", "version", "file", "sha256", "inputs", "input_shape", "outputs", "output_shape", "source", "holdout", "terms"]:
            if k in e:
                lines.append(f"{k} = {toml_value(e[k])}")
        lines.append("active = true")
        lines.append(f"[model.metrics]")
        for k, v in e["metrics"].items():
            if v is not None:
                lines.append(f"{k} = {toml_value(v)}")
        if e.get("anchor"):
            lines.append(f"[model.anchor]")
            for k, v in e["anchor"].items():
                if v is not None:
                    lines.append(f"{k} = {toml_value(v)}")
        lines.append("")
    with open(os.path.join(MODELS, "manifest.toml"), "w") as f:
        f.write("\n".join(lines))


def win_probability(name: str, x: pd.DataFrame, y: pd.Series, season: pd.Series, hidden: tuple[int, ...],
                    inputs: list[str], rng, source: str, holdout: str, anchor: dict) -> dict:
    """Trains a win-probability MLP on seasons before 2018, scores 2018, exports and checks it."""
    train, test = season < 2018, season == 2018
    scaler, layers, predict = fit_mlp(x[train], y[train], hidden)
    m = F.metrics(y[test].values, predict(x[test]))
    log(f"{name} held-out 2018: {m}")
    b = export(name, scaler, layers, len(inputs))
    idx = rng.choice(np.flatnonzero(test.values), 32, replace=False)
    table = ort_check(name, b, x.iloc[idx], predict(x.iloc[idx]))
    return save(name, "1", b, inputs, source, holdout, m, anchor, table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("OPENSPORTS_DATA", os.path.join(MODELS, "..", "..", "shared", "data")) )
    ap.add_argument("--only", default="", help="comma-separated model names to retrain; the others keep their manifest entry")
    args = ap.parse_args()
    data = os.path.join(args.data, "train") if os.path.isdir(os.path.join(args.data, "train")) else args.data
    rng = np.random.default_rng(0)
    only = {n for n in args.only.split(",") if n}
    wanted = lambda *names: not only or any(n in only for n in names)  # noqa: E731
    entries = []

    if wanted("soccer_xg", "soccer_xg_geo"):
        entries += train_xg(data, rng)
    if wanted("nfl_wp"):
        entries.append(train_nfl_wp(data, rng))
    if wanted("nfl_ep"):
        entries.append(train_nfl_ep(data, rng))
    if wanted("nba_wp"):
        entries.append(train_nba_wp(data, rng))
    if wanted("f1_win", "f1_podium"):
        entries += train_f1(data, rng)

    if only:
        with open(os.path.join(MODELS, "manifest.toml"), "rb") as f:
            previous = tomllib.load(f)["model"]
        fresh = {e["name"]: e for e in entries}
        order = [m["name"] for m in previous] + [n for n in fresh if n not in {m["name"] for m in previous}]
        entries = [fresh.get(n) or next(m for m in previous if m["name"] == n) for n in order]
    write_manifest(entries)
    log("wrote models/manifest.toml")


def loco_predictions(x: pd.DataFrame, y: pd.Series, groups: pd.Series, c: float) -> np.ndarray:
    """Each shot's prediction by the logistic regression fitted on the other competitions."""
    p = np.zeros(len(y))
    for g in groups.unique():
        out = (groups == g).values
        _, _, predict = fit_lr(x[~out], y[~out], c=c)
        p[out] = predict(x[out])
    return p


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_calibrator(kind: str, p: np.ndarray, y: np.ndarray):
    """A map from raw to calibrated probabilities fitted on (p, y): `none`, `platt` (a logistic
    regression on the logit: a and b, which fold into the model's last layer) or `isotonic`."""
    from sklearn.isotonic import IsotonicRegression

    if kind == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p)[:, None], y)
        a, b = float(lr.coef_[0][0]), float(lr.intercept_[0])
        return (a, b), lambda q: sigmoid(a * logit(q) + b)
    if kind == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(p, y)
        return None, iso.predict
    return None, lambda q: q


CALIBRATORS = ("none", "platt", "isotonic")


def fit_xg(x: pd.DataFrame, y: pd.Series, groups: pd.Series) -> tuple:
    """The soccer_xg recipe on the training shots: C by leave-one-competition-out log loss, then
    a calibrator chosen the same way (each one fitted on the other competitions' out-of-fold
    predictions, scored on the left-out one's); the hold-out is never looked at. Returns the
    scaler, the layers (a Platt map folded into the last one), the predictor and what was chosen."""
    best = None
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):
        p = loco_predictions(x, y, groups, c)
        loss = F.metrics(y.values, p)["log_loss"]
        log(f"soccer_xg C={c}: leave-one-competition-out log loss {loss:.5f}")
        if best is None or loss < best[0]:
            best = (loss, c, p)
    _, c, oof = best
    scores = {}
    for kind in CALIBRATORS:
        q = np.zeros(len(y))
        for g in groups.unique():
            out = (groups == g).values
            _, cal = fit_calibrator(kind, oof[~out], y.values[~out])
            q[out] = cal(oof[out])
        scores[kind] = F.metrics(y.values, q)["log_loss"]
    kind = min(CALIBRATORS, key=lambda k: (scores[k], CALIBRATORS.index(k)))
    log(f"soccer_xg calibrators by leave-one-competition-out log loss: {scores}; chosen: {kind}")
    scaler, layers, predict = fit_lr(x, y, c=c)
    params, cal = fit_calibrator(kind, oof, y.values)
    if kind == "platt":
        a, b = params
        (w, b0), = layers
        layers = [(w * a, b0 * a + b)]
    if kind == "isotonic":
        raise SystemExit("isotonic calibration won: it is not a Gemm stack; export it before shipping")
    return scaler, layers, (lambda xx: cal(predict(xx))), {"c": c, "calibrator": kind, "calibrator_loco_log_loss": scores}


def train_xg(data: str, rng) -> list[dict]:
    entries = []
    log("soccer_xg: StatsBomb open-data shots")
    shots = pd.read_csv(os.path.join(data, "soccer_shots.csv"))
    test_mask = (shots["competition"] == "FIFA World Cup") & (shots["season"].astype(str) == "2022")
    x, y = F.xg_features(shots)
    groups = shots["competition"] + " " + shots["season"].astype(str)
    scaler, layers, predict, _ = fit_xg(x[~test_mask], y[~test_mask], groups[~test_mask])
    p = predict(x[test_mask])
    m = F.metrics(y[test_mask].values, p)
    ref = F.metrics(y[test_mask].values, shots.loc[test_mask, "ref_xg"].values)
    base = F.metrics(y[test_mask].values, np.full(test_mask.sum(), y[~test_mask].mean()))
    log(f"soccer_xg held-out WC2022: {m}; StatsBomb xG: {ref}; base rate: {base}")
    b = export("soccer_xg", scaler, layers, len(F.XG_INPUTS))
    idx = rng.choice(np.flatnonzero(test_mask.values), 32, replace=False)
    table = ort_check("soccer_xg", b, x.iloc[idx], predict(x.iloc[idx]))
    entries.append(save("soccer_xg", "2", b, F.XG_INPUTS, "StatsBomb open data shots (shared/data/train/soccer_shots.csv), trained on every competition but WC 2022",
                        "FIFA World Cup 2022", m, {"statsbomb_log_loss": ref["log_loss"], "statsbomb_brier": ref["brier"], "statsbomb_auc": ref["auc"], "base_rate_log_loss": base["log_loss"]}, table))

    x, y = F.xg_geo_features(shots)
    scaler, layers, predict = fit_lr(x[~test_mask], y[~test_mask])
    m = F.metrics(y[test_mask].values, predict(x[test_mask]))
    log(f"soccer_xg_geo held-out WC2022: {m}")
    b = export("soccer_xg_geo", scaler, layers, len(F.XG_GEO_INPUTS))
    table = ort_check("soccer_xg_geo", b, x.iloc[idx], predict(x.iloc[idx]))
    entries.append(save("soccer_xg_geo", "1", b, F.XG_GEO_INPUTS, "StatsBomb open data shots, location/angle/body part/shot type only (no freeze frame)",
                        "FIFA World Cup 2022", m, {"statsbomb_log_loss": ref["log_loss"], "base_rate_log_loss": base["log_loss"]}, table))

    return entries


def nfl_plays(data: str) -> pd.DataFrame:
    return pd.concat([pd.read_csv(os.path.join(data, f)) for f in ["nfl_plays_1998_2008.csv", "nfl_plays_2009_2018.csv"]])


def train_nfl_wp(data: str, rng) -> dict:
    log("nfl_wp: play-by-play 1998-2018")
    x, y, season = F.nfl_features(nfl_plays(data))
    return win_probability("nfl_wp", x, y, season, (32, 16), F.NFL_INPUTS, rng,
                           "NFL play-by-play 1998-2017 (shared/data/train/nfl_plays_*.csv), Elo from earlier games",
                           "season 2018", {"nflfastR_log_loss_with_spread": 0.44, "nflfastR_log_loss_without_spread": 0.52, "nflfastR_calibration_error": 0.0055})


def train_nfl_ep(data: str, rng) -> dict:
    """Expected points: the next score in the half (7 classes, from the side with the ball)."""
    log("nfl_ep: next score in the half, play-by-play 1998-2018")
    x, y, season = F.nfl_ep_features(nfl_plays(data))
    train, test = (season < 2018).values, (season == 2018).values
    scaler, layers, predict = fit_mlp(x[train], y[train], (32, 16), multiclass=True)
    m = F.multiclass_metrics(y[test].values, predict(x[test]))
    prior = np.bincount(y[train], minlength=len(F.EP_CLASSES)) / train.sum()
    base = F.multiclass_metrics(y[test].values, np.tile(prior, (test.sum(), 1)))
    log(f"nfl_ep held-out 2018: {m}; class frequencies: {base}")
    b = export("nfl_ep", scaler, layers, len(F.EP_INPUTS), points=F.EP_POINTS)
    idx = rng.choice(np.flatnonzero(test), 32, replace=False)
    probs = predict(x.iloc[idx])
    want = np.hstack([probs @ np.asarray(F.EP_POINTS)[:, None], probs])
    table = ort_check("nfl_ep", b, x.iloc[idx], want)
    anchor = {"base_rate_log_loss": base["log_loss"], "base_rate_ep_rmse": base["ep_rmse"]}
    return save("nfl_ep", "1", b, F.EP_INPUTS,
                "NFL play-by-play 1998-2017 (shared/data/train/nfl_plays_*.csv), next score in the half derived from the score columns",
                "season 2018", m, anchor, table, outputs=["ep"] + F.EP_CLASSES)


def train_nba_wp(data: str, rng) -> dict:
    log("nba_wp: game states 1997-2018")
    states = pd.concat([pd.read_csv(os.path.join(data, f), dtype={"game_id": str}) for f in ["nba_states_1997_2008.csv", "nba_states_2009_2018.csv"]])
    games = pd.read_csv(os.path.join(data, "nba_games.csv"), dtype={"game_id": str})
    x, y, season = F.nba_features(states, games)
    return win_probability("nba_wp", x, y, season, (16, 8), F.NBA_INPUTS, rng,
                           "NBA game states on a 60 s grid 1997-2017 (shared/data/train/nba_states_*.csv), Elo from nba_games.csv",
                           "season 2018 (60 s grid)", {"py_ball_brier_3s_frames": 0.167})


F1_SEEDS = (1, 2, 3)
F1_TERMS = ("Ergast/Jolpica F1 data via TracingInsights-Archive/Stats: CC BY-NC-SA 4.0, non-commercial "
            "use with attribution; this model is derived data under the same terms")


def train_f1(data: str, rng) -> list[dict]:
    """Per lap, each driver's chance to win and to finish on the podium. Trained on 2011-2022
    (the seasons with pit-stop data), held out on 2023-2024; the baseline is the training
    seasons' win (podium) rate by current position alone. Both are normalized per lap.
    Version 2: the timing features of F1_INPUTS' second line, and three seeds' MLPs averaged
    (one seed's held-out race log loss ranged 0.69-0.74 with the version 1 inputs)."""
    log("f1_win / f1_podium: lap-by-lap timing 2011-2024")
    rows = F.f1_rows(data)
    x = F.f1_features(rows)
    train, test = (rows["season"] <= 2022).values, (rows["season"] >= 2023).values
    entries = []
    for name, label, total, hidden in [("f1_win", "win", 1.0, (16, 8)), ("f1_podium", "podium", 3.0, (16, 8))]:
        y = rows[label]
        scaler, layers, predict = fit_mlp_ensemble(x[train], y[train], hidden, F1_SEEDS)
        held = rows[test]
        m = F.f1_metrics(held, label, F.normalize_per_lap(held, predict(x[test]), total))
        rate = rows[train].groupby("position")[label].mean()
        base_raw = held["position"].map(rate).fillna(0.0).to_numpy()
        base = F.f1_metrics(held, label, F.normalize_per_lap(held, base_raw, total))
        log(f"{name} held-out 2023-2024: {m}; position alone: {base}")
        b = export(name, scaler, layers, len(F.F1_INPUTS))
        idx = rng.choice(np.flatnonzero(test), 32, replace=False)
        table = ort_check(name, b, x.iloc[idx], predict(x.iloc[idx]))
        anchor = {f"position_only_{k}": v for k, v in base.items() if k not in ("n", "laps")}
        e = save(name, "2", b, F.F1_INPUTS,
                 "F1 lap-by-lap timing, pit stops and results 2011-2022 (shared/data/train/f1/, Ergast/Jolpica)",
                 "seasons 2023-2024", m, anchor, table)
        e["terms"] = F1_TERMS
        entries.append(e)
    return entries


if __name__ == "__main__":
    main()
