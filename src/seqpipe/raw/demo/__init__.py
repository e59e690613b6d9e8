"""Offline demo data: small synthetic copies of Groove, MAESTRO, DEAM and Lakh in their real layouts.

`generate(dataset, out_dir, n_items=..., seed=...)` writes real files (MIDI, MP3, CSV, JSON) laid out
exactly as the real archives extract, quirks included (Groove's empty `audio_filename`, MAESTRO's
`.midi` files and column-oriented JSON, DEAM's header spaces, extra columns, 48 kHz and mono clips),
so every later stage reads demo and real data through the same code. Each dataset's generator is a
module of its own (`seqpipe.raw.demo.<dataset>`, with a `generate(out_dir, n_items, seed, duration_s)`
function), loaded only when that dataset is asked for; `common` holds what they share. The labels
follow from the musical content, so models can learn them (see each module's docstring).

Same arguments give byte-identical files: every random draw comes from a
`numpy.random.default_rng` seeded from (seed, dataset, item index), never from global state.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

from seqpipe.io import write_text

log = logging.getLogger(__name__)

def demo_datasets() -> list[str]:
    """The datasets with a demo: every registered dataset (each has its generator `seqpipe.raw.demo.<name>`)."""
    from seqpipe.datasets import dataset_names

    return dataset_names()


def generator_module(dataset: str) -> str:
    """The module holding `dataset`'s demo generator (its code stamp names it: a Groove edit reruns Groove only)."""
    return f"{__name__}.{dataset}"


def _readme(dataset: str, n_items: int, seed: int, duration_s: float) -> str:
    """The README.txt written beside the demo data."""
    return (
        f"Synthetic demo data for the '{dataset}' dataset, generated offline by seqpipe (seqpipe.raw.demo)\n"
        f"with seed {seed}, {n_items} items, duration_s {duration_s:g} (used by deam only).\n\n"
        "The files mirror the layout of the real archive so the pipeline reads them unchanged, but every\n"
        "file is synthetic: this is NOT the real dataset, and results on it say nothing about real data.\n"
        f"Regenerate (byte-identical): seqpipe demo --dataset {dataset} --out <dir> "
        f"--n-items {n_items} --seed {seed} --duration {duration_s:g}\n"
    )


def generate(dataset: str, out_dir: Path, *, n_items: int, seed: int, duration_s: float = 20.0, workers: int = 1) -> Path:
    """Write `n_items` synthetic items of `dataset` in its real layout under `out_dir`; return the dataset root.

    `duration_s` is the length of each DEAM clip (songs above id 2000 get 1.5x, as DEAM's full songs are
    longer; MIDI datasets have their own lengths: 8 bars per Groove take, 30-50 s per piece). Same arguments
    give byte-identical files. Existing files are overwritten, other files in `out_dir` are left alone.
    """
    from seqpipe.datasets import get_dataset

    if dataset not in demo_datasets():
        raise ValueError(f"demo: unknown dataset {dataset!r}; choose one of {', '.join(demo_datasets())}")
    if n_items < 1:
        raise ValueError(f"demo: n_items must be at least 1, got {n_items}")
    if seed < 0:
        raise ValueError(f"demo: seed must be a non-negative integer, got {seed}")
    if not duration_s > 0:
        raise ValueError(f"demo: duration_s must be positive, got {duration_s}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(generator_module(dataset))
    # generators whose items are slow enough to spread over worker processes take `workers`
    extra = {"workers": workers} if "workers" in inspect.signature(module.generate).parameters else {}
    root = module.generate(out_dir, n_items, seed, float(duration_s), **extra)
    write_text(out_dir / "README.txt", _readme(dataset, n_items, seed, float(duration_s)))
    found = get_dataset(dataset).find_root(out_dir)
    if found != root:
        raise RuntimeError(f"demo: wrote {dataset} into {root} but find_root({out_dir}) gives {found}; this is a bug")
    log.info("demo: wrote %d synthetic %s items (seed %d) to %s", n_items, dataset, seed, root)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    """`seqpipe demo --dataset NAME --out DIR --n-items N --seed S [--duration D] [--manifest FILE]`."""
    parser = argparse.ArgumentParser(prog="seqpipe demo", description="Generate small offline copies of Groove, MAESTRO, DEAM, Lakh or a "
                                     "labelled MIDI folder in their real layouts (byte-identical for the same arguments).")
    parser.add_argument("--dataset", required=True, choices=demo_datasets(), help="which dataset to generate")
    parser.add_argument("--out", required=True, type=Path, help="folder to write into (created)")
    parser.add_argument("--n-items", required=True, type=int, help="number of items (performances, songs, files) to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the generator (default: 0)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per DEAM clip")
    parser.add_argument("--workers", type=int, default=1, help="processes for DEAM audio encoding")
    parser.add_argument("--manifest", type=Path, help="also write the raw-file manifest here (the demo rule's output)")
    args = parser.parse_args(argv)
    root = generate(args.dataset, args.out, n_items=args.n_items, seed=args.seed, duration_s=args.duration, workers=args.workers)
    if args.manifest is not None:
        from seqpipe.raw.manifest import build_manifest, write_manifest

        write_manifest(build_manifest(args.dataset, root, "demo"), args.manifest)


if __name__ == "__main__":
    main()
