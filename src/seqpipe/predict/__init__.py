"""Predict with a trained run on new files: audio or MIDI through the run's own feature set, or an
HDF5 file in the task's layout (`seqpipe predict`, the MLflow pyfunc model, the `predict` rule).

One module per job: `inputs` (which files, of which kind), `featurise` (a file's windows through
`seqpipe.features`), `run` (a run folder's model and settings, batch predictions), `stream` (files in,
rows out), `tables` (the rows of the window and item tables), `choose` (the leaderboard's best run),
`command` (the CLI), `pyfunc` and `mlflow_model` (the MLflow model). docs/predict.md is the reference.
"""
