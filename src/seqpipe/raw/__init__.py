"""Raw data: a dataset's files on disk before any feature is computed.

`demo` generates offline copies in the real layouts, `download` fetches and unpacks the official
archives (`http_download`: resumable, verified; `archive`: safe extraction), and `manifest` lists a
raw folder's files with their sizes and checksums. Nothing here reads or writes a task's HDF5 file
(that is `seqpipe.taskfile`).
"""
