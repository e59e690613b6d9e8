"""Turn one item's features into samples: fixed-length windows, or one vector for summary kinds.

Also encodes the labels of a feature set's items (class indices or float vectors), from the whole
item list, so every shard of a feature set numbers the classes the same way. Two kinds of sets have
labels per step instead: a kind with `step_targets` (deam_dynamic) appends them as its extractor's
last columns, windowed with the features within the item; a set with `forecast: K` takes each
window's last K steps as the labels of its first `window - K` steps.
"""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item

SUMMARY_KINDS = frozenset({"midi_summary", "groove_summary", "mel_vector"})


def windows(features: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut [steps, D] into [n, window, D] (zero-padding a short item to one window); and the starts."""
    steps = len(features)
    if steps < window:
        padded = np.zeros((window, features.shape[1]), dtype=np.float32)
        padded[:steps] = features
        return padded[None], np.zeros(1, dtype=np.int64)
    starts = np.arange(0, steps - window + 1, hop, dtype=np.int64)
    return np.stack([features[s : s + window] for s in starts]), starts


def item_samples(features: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """An item's samples [n, T, D] and their start steps.

    A summary kind (one vector per item: `SUMMARY_KINDS`) gives one sample of one step, [1, 1, D],
    whatever `window` says: padding it to `window` steps of zeros would only add zeros.
    """
    if spec["kind"] in SUMMARY_KINDS:
        return features[:1][None], np.zeros(1, dtype=np.int64)
    return windows(features, spec["window"], spec["hop"])


def encode_targets(items: list[Item], target: str | list[str] | None) -> tuple[dict[str, np.ndarray], dict]:
    """Labels per item id: class indices for a text target, float vectors for numeric targets, none for None."""
    if target is None or not items:
        return {}, {}
    names = [target] if isinstance(target, str) else list(target)
    for item in items:
        missing = [n for n in names if n not in item.labels]
        if missing:
            raise KeyError(f"item {item.item_id}: no label {missing[0]!r}; it has {sorted(item.labels)}")
    if isinstance(target, str) and isinstance(items[0].labels[target], str):
        classes = sorted({item.labels[target] for item in items})
        index = {c: i for i, c in enumerate(classes)}
        return {it.item_id: np.int64(index[it.labels[target]]) for it in items}, {"class_names": classes}
    values = {it.item_id: np.array([float(it.labels[n]) for n in names], dtype=np.float32) for it in items}
    return values, {"target_names": names}


def encode_domains(items: list[Item], domain: str | None) -> tuple[dict[str, np.int64], dict]:
    """Domain ids per item id from the label `domain` (e.g. Groove's `drummer`), numbered in the
    sorted order of its values over all items; and the root attribute `domain_names`."""
    if domain is None or not items:
        return {}, {}
    missing = [it.item_id for it in items if domain not in it.labels]
    if missing:
        raise KeyError(f"item {missing[0]}: no label {domain!r} for the domain; it has {sorted(items[0].labels)}")
    names = sorted({str(it.labels[domain]) for it in items})
    index = {name: i for i, name in enumerate(names)}
    return {it.item_id: np.int64(index[str(it.labels[domain])]) for it in items}, {"domain_names": names}


def step_target_names(spec: dict) -> list[str]:
    """Per-step target names of a feature kind whose extractor appends them as its last columns ([] if none)."""
    from seqpipe.features.extract import kind_module

    names = getattr(kind_module(spec["kind"]), "step_targets", None)
    return list(names(spec)) if names else []


def label_encoding(items: list[Item], spec: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Labels per item id and the label root attributes of a feature set: per-item targets
    (`encode_targets`), or none per item and the names of the per-step targets (step targets of
    the kind, or with `forecast` the kind's own feature names: the predicted columns)."""
    from seqpipe.features.extract import kind_module

    if spec.get("forecast"):
        if not 0 < spec["forecast"] < spec["window"]:
            raise ValueError(f"feature set {spec['name']}: forecast {spec['forecast']} must lie between 0 and window {spec['window']} "
                             "(the window holds the input steps and the steps to predict)")
        return {}, {"target_names": list(kind_module(spec["kind"]).feature_names(spec))}
    step_names = step_target_names(spec)
    if step_names:
        return {}, {"target_names": step_names}
    return encode_targets(items, spec.get("target"))


def item_windows(features: np.ndarray, spec: dict, label: np.ndarray | None = None,
                 step_names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """An item's samples, their labels (None without) and start steps: per-item `label` repeated per
    sample, per-step targets windowed with the features, or (`forecast: K`) each window's last K steps."""
    step_names = step_target_names(spec) if step_names is None else step_names
    inputs = features[:, : -len(step_names)] if step_names else features
    data, starts = item_samples(inputs, spec)
    labels = None
    if spec.get("forecast"):
        data, labels = data[:, : -spec["forecast"]], data[:, -spec["forecast"] :]
    elif step_names:
        labels = windows(features[:, -len(step_names) :], spec["window"], spec["hop"])[0]
    elif label is not None:
        labels = np.repeat(np.asarray(label)[None], len(data), axis=0)
    return np.ascontiguousarray(data), None if labels is None else np.ascontiguousarray(labels), starts
