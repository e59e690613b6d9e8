"""The task-file contract: HDF5 files in the layout of docs/datasets.md, written, read, checked and assembled.

`hdf5` writes files and reads their attributes, `reader` is every stage's interface to a task's
splits (built on `splits`, `rows`, `encoding`, `batches`, `stats`, `rollout`), `validate` checks a
file against its task type, `assemble` joins several feature sets into one task file and `domains`
names the domain ids. Nothing here downloads or generates raw data (that is `seqpipe.raw`).
"""
