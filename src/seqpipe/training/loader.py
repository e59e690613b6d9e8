"""Kept for imports of older code: training batches come from `seqpipe.data.reader`."""

from seqpipe.data.reader import (  # noqa: F401
    Batch,
    MemorySplit,
    StreamSplit,
    TrainingData,
    epoch_order,
    estimate_mb,
    memory_task_data,
    stream_task_data,
    training_data,
)
