"""Domain ids of samples (SPEC shared interface 2): per split an int64 `domains` [N], at the root `domain_names`.

A domain is where a sample comes from (its dataset, recording setup, drummer, ...). Files get them
from a feature set's `domain: <label column>` (one id per value of that column) or from task
assembly (`seqpipe.data.assemble`: one id per source feature set). tcn_vae's domain adversary
trains on them; evaluation scores the adversary's domain accuracy on the test split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ATTR = "domain_names"
KEY = "domains"


def encode_domains(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Values (one per sample) -> int64 ids into the sorted distinct values, and those names."""
    names = sorted({str(v) for v in values})
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[str(v)] for v in values], dtype=np.int64), names


def check_domains(path: str, attrs: Mapping, splits: Mapping) -> list[str]:
    """Problems of a file's `domains` (each naming file, key, what was found, what was expected, the fix)."""
    present = {name: split.domains for name, split in splits.items() if getattr(split, "domains", None) is not None}
    names = attrs.get(ATTR)
    if not present:
        if names is not None:
            return [f"{path}: attribute `{ATTR}` is set but no split has a `{KEY}` dataset; expected int64 `{KEY}` [N] "
                    f"in every split; write them or remove the attribute"]
        return []
    problems = []
    missing = sorted(set(splits) - set(present))
    if missing:
        problems.append(f"{path}: key `{KEY}` is missing in {missing} but present in {sorted(present)}; "
                        "expected a domain id per sample in every split (or in none)")
    if not isinstance(names, list) or not names:
        problems.append(f"{path}: key `{KEY}` is present but the root attribute `{ATTR}` is {names!r}; "
                        "expected a list of domain names (JSON list of str); write it next to the ids")
        names = None
    for name, ids in present.items():
        where = f"{path} [{name}]"
        n = len(splits[name].data) if splits[name].data is not None else len(ids)
        if ids.ndim != 1 or len(ids) != n:
            problems.append(f"{where}: key `{KEY}` has shape {list(ids.shape)}; expected [{n}] (one id per sample)")
            continue
        if ids.dtype.kind not in "iu":
            problems.append(f"{where}: key `{KEY}` is {ids.dtype}; expected int64 domain ids; store ids.astype('int64')")
            continue
        if names is not None and len(ids) and (ids.min() < 0 or ids.max() >= len(names)):
            problems.append(f"{where}: key `{KEY}` holds ids {int(ids.min())}..{int(ids.max())}; expected ids in "
                            f"[0, {len(names)}) (one per entry of `{ATTR}`); fix the ids or the names")
    return problems


def domain_accuracy(logits: np.ndarray, domains: np.ndarray) -> dict[str, float]:
    """The adversary's accuracy on known domain ids, next to the majority-domain rate (what chance gives)."""
    domains = np.asarray(domains)
    counts = np.bincount(domains) if len(domains) else np.zeros(1)
    return {
        "domain_accuracy": float(np.mean(np.argmax(logits, axis=1) == domains)) if len(domains) else 0.0,
        "domain_majority": float(counts.max() / max(1, len(domains))),
    }
