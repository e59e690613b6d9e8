"""Data stage: demo generation, raw manifests, HDF5 reading and writing, validation."""
