"""Domain ids of samples (SPEC shared interface 2): per split an int64 `domains` [N], at the root `domain_names`.

A domain is where a sample comes from (its dataset, recording setup, drummer, ...). Files get them
from a feature set's `domain: <label column>` (one id per value of that column) or from task
assembly (`seqpipe.taskfile.assemble`: one id per source feature set). tcn_vae's domain adversary
trains on them; evaluation scores the adversary's domain accuracy on the test split. Feature files
number them in `seqpipe.features.windows.encode_domains`; `seqpipe.taskfile.validate.check_domains`
checks them; `seqpipe.taskfile.reader` yields them as `Batch.domain`.
"""

from __future__ import annotations

import numpy as np

ATTR = "domain_names"
KEY = "domains"


def domain_accuracy(logits: np.ndarray, domains: np.ndarray) -> dict[str, float]:
    """The adversary's accuracy on known domain ids, next to the majority-domain rate (what chance gives)."""
    domains = np.asarray(domains)
    counts = np.bincount(domains) if len(domains) else np.zeros(1)
    return {
        "domain_accuracy": float(np.mean(np.argmax(logits, axis=1) == domains)) if len(domains) else 0.0,
        "domain_majority": float(counts.max() / max(1, len(domains))),
    }
