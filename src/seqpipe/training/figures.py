"""Figures of a training run: `figures/loss.png`, train and val loss and metric per epoch.

Drawn with Pillow (a line chart: axes, ticks, both splits, a legend), not matplotlib: a sweep's
training job lasts seconds, and importing and laying out matplotlib was a large part of them
(issue 25; benchmarks/overhead.py). The same rows give the same PNG bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

from seqpipe.io import atomic_path

SIZE = (900, 340)  # the whole figure, two panels side by side
MARGIN = (64, 20, 16, 46)  # left, top, right, bottom of each panel's plot area
COLOURS = {"train": (31, 119, 180), "val": (255, 127, 14)}
GREY, BLACK = (215, 215, 215), (0, 0, 0)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values spanning [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]


def _points(rows: list[dict], key: str) -> dict[str, list[tuple[int, float]]]:
    """(epoch, value) of each split that has finite values of `key`."""
    found: dict[str, list[tuple[int, float]]] = {}
    for split in COLOURS:
        pts = [(int(r["epoch"]), float(r[key])) for r in rows if r["split"] == split and r.get(key) not in (None, "")]
        pts = [(e, v) for e, v in pts if math.isfinite(v)]
        if pts:
            found[split] = pts
    return found


def _panel(draw, font, box: tuple[int, int, int, int], series: dict[str, list[tuple[int, float]]], ylabel: str) -> None:
    """One panel: grid, axes, ticks, the splits' lines with markers, axis labels and a legend, inside `box`."""
    x0, y0, x1, y1 = box[0] + MARGIN[0], box[1] + MARGIN[1], box[2] - MARGIN[2], box[3] - MARGIN[3]
    values = [v for pts in series.values() for _, v in pts] or [0.0, 1.0]
    epochs = [e for pts in series.values() for e, _ in pts] or [0, 1]
    yt = nice_ticks(min(values), max(values))
    ylo, yhi = (yt[0], yt[-1]) if yt[-1] > yt[0] else (yt[0] - 0.5, yt[0] + 0.5)
    xlo, xhi = min(epochs), max(max(epochs), min(epochs) + 1)
    sx = lambda e: x0 + (e - xlo) / (xhi - xlo) * (x1 - x0)  # noqa: E731
    sy = lambda v: y1 - (v - ylo) / (yhi - ylo) * (y1 - y0)  # noqa: E731
    xt = [e for e in nice_ticks(xlo, xhi, 6) if float(e).is_integer() and xlo <= e <= xhi] or [xlo]
    for v in yt:
        draw.line([(x0, sy(v)), (x1, sy(v))], fill=GREY)
        draw.text((x0 - 6, sy(v)), f"{v:.4g}", fill=BLACK, font=font, anchor="rm")
    for e in xt:
        draw.line([(sx(e), y0), (sx(e), y1)], fill=GREY)
        draw.text((sx(e), y1 + 6), f"{int(e)}", fill=BLACK, font=font, anchor="mt")
    draw.rectangle([x0, y0, x1, y1], outline=BLACK)
    for split, pts in series.items():
        xy = [(sx(e), sy(v)) for e, v in pts]
        if len(xy) > 1:
            draw.line(xy, fill=COLOURS[split], width=2)
        for x, y in xy:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=COLOURS[split])
    if series:  # the legend, on a white box over the lines
        draw.rectangle([x1 - 76, y0 + 4, x1 - 6, y0 + 20 + 16 * (len(series) - 1)], fill="white", outline=GREY)
    for i, split in enumerate(series):
        draw.line([(x1 - 70, y0 + 12 + 16 * i), (x1 - 50, y0 + 12 + 16 * i)], fill=COLOURS[split], width=2)
        draw.text((x1 - 44, y0 + 12 + 16 * i), split, fill=BLACK, font=font, anchor="lm")
    draw.text(((x0 + x1) / 2, box[3] - 6), "epoch", fill=BLACK, font=font, anchor="md")
    draw.text((box[0] + 4, y0 - 4), ylabel, fill=BLACK, font=font, anchor="ld")


def plot_history(rows: list[dict], path: str | Path, metric_name: str = "metric") -> Path:
    """Plot loss and metric per epoch for each split from scalars rows; write the PNG atomically."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", SIZE, "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=12)
    half = SIZE[0] // 2
    for i, (key, label) in enumerate((("loss", "loss"), ("metric", metric_name))):
        _panel(draw, font, (i * half, 0, (i + 1) * half, SIZE[1]), _points(rows, key), label)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=False)
    return path
