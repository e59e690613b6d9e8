"""Feature extraction: pure extractors (midi, audio), one module per feature kind, and `build`."""
