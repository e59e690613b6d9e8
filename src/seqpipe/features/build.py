"""Build one feature set's HDF5 file from a dataset's raw files, in one job or in shards.

Items are extracted in worker processes (`seqpipe.features.extract`), each with a per-file
timeout; each item's samples are appended to a part file as it finishes, in item order
(`seqpipe.features.parts`), so memory is bounded by the items in flight, not by the dataset. The
part files are then streamed into the final file (`seqpipe.features.merge`), which is why one job
and N shard jobs give byte-identical files. An item that cannot be read, hangs its parser or kills
its worker is skipped and listed, with its reason, in `<set>.skipped.json`; the stage fails only
when more than `max_failed_fraction` of the items fail.

    seqpipe features --manifest M --spec JSON --out H5 --skipped JSON [--previous H5] [--workers N]  # one job
    seqpipe features --manifest M --spec JSON --shard I/N --part P [--workers N]         # shard I
    seqpipe features --manifest M --spec JSON --out H5 --skipped JSON --parts P0 P1 ...  # merge
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqpipe.raw.manifest import read_manifest
from seqpipe.datasets import SPLITS, Item, get_dataset
from seqpipe.features.extract import Extracted, extract_all, extract_stream, kind_module
from seqpipe.features.merge import merge
from seqpipe.features.parts import write_part
from seqpipe.features.shards import parse_shard, shard_slice
from seqpipe.features.windows import encode_domains, encode_targets, item_windows, label_encoding, step_target_names, windows
from seqpipe.io import atomic_path

__all__ = ["Extracted", "assemble", "build", "build_part", "encode_targets", "extract_all", "kind_module", "windows"]

log = logging.getLogger("seqpipe.features")
PROGRESS_EVERY_S = 10.0


def load_items(manifest: dict, spec: dict) -> list[Item]:
    """The feature set's items: the dataset's items under the manifest's root, up to `limit`."""
    items = get_dataset(spec["dataset"]).load_items(Path(manifest["root"]))
    return items[: spec["limit"]] if spec.get("limit") else items


def progress(total: int, what: str) -> Callable[[Extracted], None]:
    """A callback logging count, rate and ETA every PROGRESS_EVERY_S seconds (the job's log is a file)."""
    start = last = time.monotonic()
    done = 0

    def step(result: Extracted) -> None:
        nonlocal done, last
        done += 1
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S or done == total:
            last = now
            log.info("%s: %s", what, tqdm.format_meter(done, total, now - start, unit="items", ascii=True))

    return step


def build_part(manifest: dict, spec: dict, part: str | Path, shard: tuple[int, int] = (0, 1), workers: int = 1) -> None:
    """Extract shard `shard` = (index, count) of the feature set's items into the part file `part`."""
    items = load_items(manifest, spec)
    labels, label_attrs = label_encoding(items, spec)  # from every item: the same classes in every shard
    domains, domain_attrs = encode_domains(items, spec.get("domain"))
    mine = shard_slice(items, *shard)
    log.info("extracting %s from %d of %d %s items (shard %d of %d) with %d workers",
             spec["kind"], len(mine), len(items), spec["dataset"], shard[0], shard[1], workers)
    results = extract_stream(mine, spec, workers, spec.get("timeout_s"))
    with atomic_path(part) as tmp:
        write_part(tmp, results, spec, labels, {**label_attrs, **domain_attrs}, manifest["root"],
                   on_item=progress(len(mine), f"{spec['name']} shard {shard[0]}/{shard[1]}"), domains=domains)


def assemble(results: list[Extracted], spec: dict) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Window extracted items in memory and group the samples by split, as the part files do (small
    sets and tests; `build` streams). Returns the splits and the label root attributes."""
    ok = [r for r in results if r.features is not None]
    labels, label_attrs = label_encoding([r.item for r in ok], spec)
    domains, domain_attrs = encode_domains([r.item for r in ok], spec.get("domain"))
    step_names = step_target_names(spec)
    parts: dict[str, dict[str, list]] = {s: {"data": [], "labels": [], "item_ids": [], "window_start": [], "domains": []} for s in SPLITS}
    for r in ok:
        data, y, starts = item_windows(r.features, spec, labels.get(r.item.item_id), step_names)
        part = parts[r.item.split]
        part["data"].append(data)
        if y is not None:
            part["labels"].append(y)
        part["item_ids"].append(np.array([r.item.item_id] * len(data)))
        part["window_start"].append(starts)
        if domains:
            part["domains"].append(np.full(len(data), domains[r.item.item_id], dtype=np.int64))
    splits = {}
    for split, part in parts.items():
        if not part["data"]:
            raise ValueError(f"feature set {spec['name']}: the {split} split is empty after extraction "
                             f"({len(ok)} items extracted); raise datasets.{spec['dataset']}.limit or check the skipped report")
        splits[split] = {key: np.concatenate(values) for key, values in part.items() if values}
    return splits, {**label_attrs, **domain_attrs}


def kind_attrs(spec: dict) -> dict:
    """The root attributes a feature kind gives the file."""
    kind = kind_module(spec["kind"])
    return {"feature_names": kind.feature_names(spec), "frame_rate": kind.frame_rate(spec), "feature_set": spec["name"],
            "feature_kind": spec["kind"], "dataset": spec["dataset"]}


def build(manifest_path: str | Path, spec: dict, out: str | Path, skipped_out: str | Path, workers: int = 1,
          parts: list[str | Path] | None = None, previous: str | Path | None = None) -> dict:
    """Write a feature set's HDF5 file and skipped-files report, from `parts` or (none given) by
    extracting every item in this process's workers; keep a good file also at `previous` (a hard
    link). Returns the report's header."""
    manifest = read_manifest(manifest_path)
    if parts:
        return merge(parts, manifest, spec, kind_attrs(spec), out, skipped_out, previous)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(out).name}.", dir=Path(out).parent) as scratch:
        part = Path(scratch) / "part.h5"  # removed with its folder, whatever happens
        build_part(manifest, spec, part, (0, 1), workers)
        return merge([part], manifest, spec, kind_attrs(spec), out, skipped_out, previous)


def main(argv: list[str] | None = None) -> None:
    """`seqpipe features` (see the module docstring for the three forms)."""
    parser = argparse.ArgumentParser(prog="seqpipe features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="the dataset's manifest (resources/raw/<dataset>.manifest.json)")
    parser.add_argument("--spec", required=True, help="the feature set's settings as JSON")
    parser.add_argument("--out", help="the feature set's HDF5 file")
    parser.add_argument("--skipped", help="the skipped-files report (JSON)")
    parser.add_argument("--parts", nargs="*", default=[], help="merge these part files (in shard order)")
    parser.add_argument("--shard", help="I/N: extract only shard I of N into --part")
    parser.add_argument("--part", help="the part file a --shard job writes")
    parser.add_argument("--previous", help="also keep a good file here (a hard link); a failure names it")
    parser.add_argument("--workers", type=int, default=1, help="extraction processes (default: 1)")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
        if args.shard:
            if not args.part:
                parser.error("--shard needs --part")
            build_part(read_manifest(args.manifest), spec, args.part, parse_shard(args.shard), args.workers)
        else:
            if not (args.out and args.skipped):
                parser.error("--out and --skipped are required (or --shard and --part)")
            build(args.manifest, spec, args.out, args.skipped, args.workers, args.parts, args.previous)
    except (RuntimeError, ValueError, KeyError, FileNotFoundError, OSError) as err:
        log.error("%s", err)
        sys.exit(1)

