"""Scores a shipped model on any CSV in the training tables' column format and prints the
metrics as one JSON line. Every feature is derived from the CSV itself, including pre-game Elo
ratings from the earlier games in the same file.

    python models/train/evaluate.py nfl_wp ../shared/data/train/nfl_plays_2009_2018.csv
    python models/train/evaluate.py nfl_ep ../shared/data/train/nfl_plays_2009_2018.csv
    python models/train/evaluate.py soccer_xg shots.csv

Binary models print log loss, Brier, AUC and calibration error; nfl_ep prints its 7-class log
loss and the RMSE of expected points against the points of the next score.
"""
from __future__ import annotations

import json
import os
import sys
import tomllib

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
import features as F  # noqa: E402

MODELS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DERIVE = {
    "nfl_wp": lambda df: F.nfl_features(df)[:2],
    "nba_wp": lambda df: F.nba_features(df)[:2],
    "nfl_ep": lambda df: F.nfl_ep_features(df)[:2],
    "soccer_xg": F.xg_features,
    "soccer_xg_geo": F.xg_geo_features,
}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, csv = sys.argv[1], sys.argv[2]
    with open(os.path.join(MODELS, "manifest.toml"), "rb") as f:
        manifest = tomllib.load(f)
    spec = next((m for m in manifest["model"] if m["name"] == name), None)
    if spec is None or name not in DERIVE:
        print(f"unknown model {name!r}; shipped: {[m['name'] for m in manifest['model']]}", file=sys.stderr)
        return 2
    import onnxruntime as ort

    df = pd.read_csv(csv, dtype={"game_id": str})
    x, y = DERIVE[name](df)
    x = x[spec["inputs"]]
    sess = ort.InferenceSession(os.path.join(MODELS, spec["file"]), providers=["CPUExecutionProvider"])
    # The model has batch 1 (as the server runs it): score row by row in chunks.
    values = x.values.astype(np.float32)
    out = np.vstack([sess.run(None, {"input": values[i : i + 1]})[0][0] for i in range(len(values))])
    if out.shape[1] == 1:
        scores = F.metrics(y.values, out[:, 0])
    else:  # nfl_ep: expected points, then the class probabilities
        scores = F.multiclass_metrics(y.values, out[:, 1:])
    out = {"model": name, "version": spec["version"], "csv": os.path.basename(csv), **scores}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
