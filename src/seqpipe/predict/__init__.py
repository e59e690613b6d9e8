"""Predict with a trained run on new files: audio or MIDI through the run's own feature set, or an
HDF5 file in the task's layout (`seqpipe predict`, the MLflow pyfunc model, the `predict` rule).

One module per job: `inputs` (which files, of which kind), `featurise` (a raw file's windows through
`seqpipe.features`), `run` (a run folder's model and settings, batch predictions), `tables` (the window
and item tables), `command` (the CLI). docs/predict.md is the reference.
"""
