"""seqpipe: sequence datasets to HDF5, PyTorch models per (model, task), evaluation and tracking."""

__version__ = "0.1.0"
