"""The MLflow pyfunc model of a run: file paths in, the window table (or the item table) out.

`mlflow.pyfunc.load_model(uri).predict(pandas.DataFrame({"path": [...]}))` gives the table
`seqpipe predict` writes; `params={"table": "items"}` gives the item table (skipped files with their
reasons). The model is logged by `seqpipe.tracking.model.log_model` without pickle: the weights as a
state dict (`weights.pt`, loaded with `torch.load(weights_only=True)`), the settings as JSON
(`settings.json`), and this class through models-from-code (`seqpipe/predict/mlflow_model.py`).
Loading it needs seqpipe installed, as its feature extraction runs in the model.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd

TABLES = ("windows", "items")


def predictor_from(settings: dict, weights_path: str):
    """A `Predictor` from a logged model's settings and state dict."""
    import torch

    from seqpipe.config.types import Task
    from seqpipe.models import build_model
    from seqpipe.predict.run import Predictor

    model = build_model(settings["model_config"], **settings["dims"])
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return Predictor(model.eval(), Task.from_dict(settings["task"]), settings["names"], settings["dims"], settings["specs"], settings["name"])


def frames(p, paths, workers: int = 1) -> dict:
    """Both tables of `paths` as pandas DataFrames, keyed "windows" and "items"."""
    from seqpipe.predict import tables
    from seqpipe.predict.inputs import expand
    from seqpipe.predict.stream import predict_rows

    rows: dict[str, list] = {"window": [], "item": []}
    for table, row in predict_rows(p, expand((str(x) for x in paths), p.dataset), workers):
        rows[table].append(row)
    return {"windows": pd.DataFrame(rows["window"], columns=tables.window_columns(p)),
            "items": pd.DataFrame(rows["item"], columns=tables.item_columns(p))}


class SeqpipeModel(mlflow.pyfunc.PythonModel):
    """A trained run that labels audio, MIDI or HDF5 files given by path."""

    def load_context(self, context) -> None:
        with open(context.artifacts["settings"], encoding="utf-8") as fh:
            settings = json.load(fh)
        self.predictor = predictor_from(settings, context.artifacts["weights"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """The window table of the files in `model_input["path"]` (`params={"table": "items"}`: the item table)."""
        table = (params or {}).get("table", "windows")
        if table not in TABLES:
            raise ValueError(f"params table={table!r}; expected one of {', '.join(TABLES)}")
        if "path" not in model_input:
            raise KeyError(f"the input has columns {list(model_input.columns)}; expected a `path` column of audio, MIDI or HDF5 files")
        return frames(self.predictor, model_input["path"].tolist())[table]
