"""A prediction as two streams of rows: sources in, window rows and item rows out, a batch at a time.

Raw files go through `featurise.file_windows` (the run's feature set), HDF5 files through
`featurise.hdf5_blocks` (a block of rows at a time, predicted a batch at a time across items); a file of the wrong kind, or one that cannot be read, gives an item row
with status `skipped` and its reason (and a warning in the log), never silence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from seqpipe.predict import featurise, tables
from seqpipe.predict.inputs import Source, wrong_kind
from seqpipe.predict.run import Predictor

log = logging.getLogger("seqpipe.predict")
BATCH = 256  # windows per forward pass


def predict_rows(p: Predictor, sources: Iterable[Source], workers: int = 1, batch: int = BATCH,
                 block_bytes: int = featurise.BLOCK_BYTES) -> Iterator[tuple[str, list]]:
    """("window", row) and ("item", row) pairs, in input order; an item's row follows its windows.
    HDF5 inputs are read `block_bytes` of inputs at a time."""
    raw: list[Source] = []
    for source in sources:
        if source.kind == "hdf5":
            yield from _raw_rows(p, raw, workers, batch)
            raw = []
            yield from _hdf5_rows(p, source, batch, block_bytes)
            continue
        reason = source.reason or wrong_kind(source, p.spec["kind"])
        if reason:
            yield _skipped(p, source, reason)
            continue
        raw.append(source)
        if len(raw) >= batch:
            yield from _raw_rows(p, raw, workers, batch)
            raw = []
    yield from _raw_rows(p, raw, workers, batch)


def _skipped(p: Predictor, source: Source, reason: str) -> tuple[str, list]:
    log.warning("%s: skipped: %s", source.path, reason)
    return "item", tables.skipped_row(p, source.item_id, str(source.path), reason)


def _windows_rows(p: Predictor, w: featurise.Windows, summary: tables.ItemSummary, batch: int) -> Iterator[tuple[str, list]]:
    for lo in range(0, len(w.data), batch):
        outputs = p.outputs(w.data[lo : lo + batch])
        part = featurise.Windows(w.source, None, w.start_s[lo : lo + batch])
        for row in tables.window_rows(p, part, outputs, summary.windows):
            yield "window", row
        summary.add(outputs)


def _raw_rows(p: Predictor, sources: list[Source], workers: int, batch: int) -> Iterator[tuple[str, list]]:
    if not sources:
        return
    for w in featurise.file_windows(sources, p.spec, workers):
        if w.data is None:
            yield _skipped(p, w.source, w.reason or "unknown")
            continue
        if tuple(w.data.shape[1:]) != (int(p.dims["seq_len"]), int(p.dims["in_dim"])):
            yield _skipped(p, w.source, f"its windows have shape {tuple(w.data.shape[1:])}, the model takes "
                                        f"({p.dims['seq_len']}, {p.dims['in_dim']})")
            continue
        summary = tables.ItemSummary(p, w.source.item_id, str(w.source.path))
        yield from _windows_rows(p, w, summary, batch)
        yield "item", summary.row()


def _hdf5_rows(p: Predictor, source: Source, batch: int, block_bytes: int) -> Iterator[tuple[str, list]]:
    summary: tables.ItemSummary | None = None
    try:
        for block in featurise.hdf5_blocks(source, p.dims, block_bytes, multiple=batch):
            outputs = _block_outputs(p, block.data, batch)
            for lo, hi in block.runs():
                item_id = str(block.item_ids[lo])
                if summary is not None and summary.item_id != item_id:
                    yield "item", summary.row()
                    summary = None
                summary = summary or tables.ItemSummary(p, item_id, str(source.path))
                part = featurise.Windows(Source(source.path, item_id, "hdf5"), None, block.start_s[lo:hi])
                for row in tables.window_rows(p, part, outputs[lo:hi], summary.windows):
                    yield "window", row
                summary.add(outputs[lo:hi])
    except (OSError, ValueError, KeyError) as err:
        yield _skipped(p, source, f"{type(err).__name__}: {err}" if not isinstance(err, ValueError) else str(err))
    if summary is not None:
        yield "item", summary.row()


def _block_outputs(p: Predictor, data, batch: int):
    """A block's predictions, `batch` rows per forward pass whatever the items (a pass per item would take one
    pass per row of a file whose every row is its own item)."""
    import numpy as np

    return np.concatenate([p.outputs(data[lo : lo + batch]) for lo in range(0, len(data), batch)])
