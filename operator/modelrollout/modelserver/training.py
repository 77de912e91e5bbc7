"""Train the demo's real models: run by path with MLServer's python, `python training.py OUTDIR`.

It runs in MLServer's venv (scikit-learn and joblib live there, not in the operator's), so it imports
nothing from modelrollout. The data set is scikit-learn's breast cancer data (569 rows, 30 numeric
features), shipped inside the package: nothing is downloaded. Every split and solver is seeded, so the
same versions train the same models.

Writes into OUTDIR: `good.joblib`, `shifted.joblib`, `hotfix.joblib` (scikit-learn pipelines whose
`predict_proba(rows)[:, 1]` is the score) and `dataset.json` (feature names, rows and targets, for the
load generator, which runs without scikit-learn).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SEED = 0


def _pipeline(regularisation: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=regularisation, max_iter=2000, random_state=SEED))


def train(outdir: Path) -> dict[str, float]:
    """Fit and save the three models and the data set; returns each model's held-out accuracy."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    rows, targets = data.data, data.target
    split = train_test_split(rows, targets, test_size=0.3, random_state=SEED, stratify=targets)
    train_rows, test_rows, train_targets, test_targets = split
    models = {
        # Sound: moderate regularisation, confident and well separated scores.
        "good": _pipeline(1.0).fit(train_rows, train_targets),
        # Strong regularisation: still about 94% accurate, but the scores crowd towards the middle, so
        # the score histogram shifts (PSI about 0.8 against good over the data set).
        "shifted": _pipeline(0.01).fit(train_rows, train_targets),
    }
    # The hotfix: the good recipe on another split; its scores stay close to good's (PSI about 0.02).
    hot_train, _, hot_targets, _ = train_test_split(
        rows, targets, test_size=0.3, random_state=SEED + 1, stratify=targets
    )
    models["hotfix"] = _pipeline(0.5).fit(hot_train, hot_targets)

    outdir.mkdir(parents=True, exist_ok=True)
    accuracy = {}
    for name, model in models.items():
        joblib.dump(model, outdir / f"{name}.joblib")
        accuracy[name] = float(model.score(test_rows, test_targets))
    dataset = {
        "name": "sklearn.datasets.load_breast_cancer",
        "feature_names": [str(name) for name in data.feature_names],
        "rows": rows.tolist(),
        "targets": targets.tolist(),
    }
    (outdir / "dataset.json").write_text(json.dumps(dataset))
    (outdir / "accuracy.json").write_text(json.dumps(accuracy, indent=1))
    return accuracy


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python training.py OUTDIR")
    print(json.dumps(train(Path(sys.argv[1]))))
