"""The trained demo models and their data set, cached beside the MLServer venv that trained them.

Training runs `training.py` with MLServer's python, because scikit-learn lives only there and a joblib
pickle must be loaded by the scikit-learn that wrote it. Hence the cache is inside the venv's directory:
a reinstalled venv retrains. A marker written last makes it a cache hit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelrollout.modelserver import behaviour, install

RECIPE = "1"  # bump when training.py changes what it trains
MARKER = ".modelrollout-complete"
TRAINING_SCRIPT = Path(__file__).with_name("training.py")


class TrainingError(RuntimeError):
    """Training the demo models failed; the message carries the script's output."""


@dataclass(frozen=True)
class ModelStore:
    """Where the trained models and the data set are."""

    directory: Path

    def artifact(self, name: str) -> Path:
        if name not in behaviour.ARTIFACTS:
            raise ValueError(f"unknown model artifact {name!r}: use one of {', '.join(behaviour.ARTIFACTS)}")
        return self.directory / f"{name}.joblib"

    @property
    def dataset_file(self) -> Path:
        return self.directory / "dataset.json"


@dataclass(frozen=True)
class Dataset:
    """The data set's rows as plain lists (the load generator needs no numpy or scikit-learn)."""

    feature_names: tuple[str, ...]
    rows: tuple[tuple[float, ...], ...]
    targets: tuple[int, ...]


def store_dir(root: Path | None = None) -> Path:
    return install.venv_dir(root) / "models" / f"recipe-{RECIPE}"


def ensure_models(root: Path | None = None) -> ModelStore:
    """Install MLServer if needed, train the models unless cached, return where they are."""
    directory = store_dir(root)
    store = ModelStore(directory)
    if (directory / MARKER).is_file():
        return store
    python = install.ensure_mlserver(root)
    building = directory.with_name(directory.name + ".partial")
    shutil.rmtree(building, ignore_errors=True)
    result = subprocess.run(
        [str(python), str(TRAINING_SCRIPT), str(building)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise TrainingError(
            f"training the demo models with {python} failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}\n"
            f"Delete {install.venv_dir(root)} to reinstall MLServer and its scikit-learn, then retry."
        )
    missing = [name for name in behaviour.ARTIFACTS if not (building / f"{name}.joblib").is_file()]
    if missing:
        raise TrainingError(f"training wrote no model for {', '.join(missing)} in {building}")
    (building / MARKER).write_text(result.stdout)
    shutil.rmtree(directory, ignore_errors=True)
    building.rename(directory)
    return store


def load_dataset(store: ModelStore) -> Dataset:
    data = json.loads(store.dataset_file.read_text())
    return Dataset(
        feature_names=tuple(data["feature_names"]),
        rows=tuple(tuple(float(value) for value in row) for row in data["rows"]),
        targets=tuple(int(target) for target in data["targets"]),
    )
