"""Kept for imports of older code: a task's splits are read by `seqpipe.data.reader`."""

from seqpipe.data.reader import (  # noqa: F401
    TaskData,
    encode_inputs,
    file_names,
    is_one_hot,
    load_task_data,
    one_hot,
    require_samples,
    standardisation,
    targets,
    task_dims,
)
