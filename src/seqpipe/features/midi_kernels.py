"""Compiled loops behind `seqpipe.features.midi`: note pairing, piano-roll filling, note statistics.

Each kernel does in one pass what numpy needs tens of calls of a few microseconds each for (on
a MAESTRO file those calls cost more than symusic's parse). The arithmetic is numpy's, operation
for operation: the same float64 products and sums in the same order, numpy's pairwise summation
for `sum`, `mean` and `std`, so the results are bit for bit those of the plain numpy code.
Only plain loops are used (none of numba's sorts or set operations), which keeps the one-off
compilation to seconds; the code is cached next to this file (`cache=True`), so a new worker
process loads it in a fraction of a second instead.
"""

from __future__ import annotations

import numba
import numpy as np

# --- read_notes -----------------------------------------------------------------------------------


@numba.njit(cache=True)
def _seconds(tick: int, tempo_tick: np.ndarray, tempo_base: np.ndarray, tempo_scale: np.ndarray) -> float:
    """Seconds at `tick`: its tempo segment's start time + seconds per tick * ticks into the segment."""
    if tempo_tick.size == 1:  # one segment from tick 0: its start time 0.0 adds nothing
        return tempo_scale[0] * float(tick)
    lo, hi = 1, tempo_tick.size  # the last segment starting at or before `tick` (the first starts at 0)
    while lo < hi:
        mid = (lo + hi) // 2
        if tempo_tick[mid] <= tick:
            lo = mid + 1
        else:
            hi = mid
    segment = lo - 1
    return tempo_base[segment] + tempo_scale[segment] * float(tick - tempo_tick[segment])


@numba.njit(cache=True)
def read_one_track(
    time: np.ndarray,
    duration: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    drum: bool,
    tempo_tick: np.ndarray,
    tempo_base: np.ndarray,
    tempo_scale: np.ndarray,
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One symusic track's notes as `Notes` arrays (start, end, pitch, velocity, is_drum), in one pass.

    Returns (ok, arrays): ok is False, and the arrays are to be ignored, unless the track is the
    usual kind: ticks in [0, 2**32), notes in start order, each pitch's symusic ends rising with its
    starts (first in, first out), and the notes of non-zero length in (start, pitch) order. Then a
    note struck again before its note-off ends at the end of the earliest note of its pitch still
    sounding (pretty_midi's pairing: the first note-off after its start), zero-length notes are
    dropped, and ticks become seconds with the tempo map (segment start ticks `tempo_tick`, the
    first 0; their start times; seconds per tick), as `midi._pretty_midi_ends` and `midi._seconds` do.
    """
    n = time.size
    latest, sounding = np.full(128, -1, np.int64), np.full(128, -1, np.int64)
    following = np.empty(n, np.int64)  # the next note of the same pitch
    start, end = np.empty(n), np.empty(n)
    pitch_out, velocity_out = np.empty(n, np.int16), np.empty(n, np.int16)
    ok, m, last_on, last_rank = True, 0, np.int64(0), np.int64(-1)
    for i in range(n):
        on, p = np.int64(time[i]), np.int64(pitch[i])
        off = on + duration[i]
        ok &= (on >= last_on) & (off < 2**32) & (p >= 0) & (p < 128)  # on >= 0: start order from 0
        if not ok:
            break
        last_on, paired = on, off
        previous = latest[p]
        if previous < 0:
            sounding[p] = i
        else:
            following[previous] = i
            previous_off = np.int64(time[previous]) + duration[previous]
            ok &= off >= previous_off
            if previous_off > on:  # struck again before its note-off: ends at the first end after `on`
                h = sounding[p]
                while np.int64(time[h]) + duration[h] <= on:
                    h = following[h]
                sounding[p] = h
                paired = np.int64(time[h]) + duration[h]
        latest[p] = i
        if off > on:  # symusic's zero-length pairs: pretty_midi drops them
            rank = on << 7 | p
            ok &= rank >= last_rank
            last_rank = rank
            start[m] = _seconds(on, tempo_tick, tempo_base, tempo_scale)
            end[m] = _seconds(paired, tempo_tick, tempo_base, tempo_scale)
            pitch_out[m], velocity_out[m] = p, velocity[i]
            m += 1
    return ok, start[:m], end[:m], pitch_out[:m], velocity_out[:m], np.full(m, drum)


# --- piano_roll ------------------------------------------------------------------------------------


@numba.njit(cache=True)
def roll_extent(
    start: np.ndarray, end: np.ndarray, pitch: np.ndarray, is_drum: np.ndarray, fps: float, max_seconds: float
) -> tuple[int, int, bool]:
    """(number of non-drum notes, frames of their piano roll, whether one ends after max_seconds).

    The count is -1 when a non-drum note has a pitch outside 0..127 or a start that is not a
    finite time >= 0 (`fill_roll` would write outside the roll).
    """
    count, n_frames, valid, too_long = 0, 0, True, False
    for i in range(start.size):
        tonal = not is_drum[i]
        valid &= is_drum[i] | ((pitch[i] >= 0) & (pitch[i] < 128) & (start[i] >= 0.0) & (start[i] < np.inf))
        too_long |= tonal & (end[i] > max_seconds)
        first = np.int64(start[i] * fps)
        stop = max(np.int64(end[i] * fps), first + 1)
        count += tonal
        n_frames = max(n_frames, stop if tonal else 0)
    return (count if valid else -1), n_frames, too_long


@numba.njit(cache=True)
def fill_roll(
    roll: np.ndarray, start: np.ndarray, end: np.ndarray, pitch: np.ndarray, velocity: np.ndarray,
    is_drum: np.ndarray, fps: float,
) -> None:
    """Write every cell of `roll` [n_frames, 128]: the max velocity / 127 of the non-drum notes sounding, else 0.

    Rows are zeroed just before the first note reaching them is painted (a frontier that only moves
    forward, so each row is zeroed once, whatever the note order), the rest at the end: an
    uninitialised array needs no separate zeroing pass, a fresh page is first touched by a write
    (one page fault; np.zeros and a max over it take two), and in start order the rows a note
    paints are still in cache. The notes must have passed `roll_extent` (pitches 0..127, starts
    >= 0) and `roll` must hold its n_frames.
    """
    zeroed = 0
    for i in range(start.size):
        if is_drum[i]:
            continue
        first = np.int64(start[i] * fps)  # times are >= 0: truncation is floor
        stop = max(np.int64(end[i] * fps), first + 1)
        if stop > zeroed:
            roll[zeroed:stop] = 0.0
            zeroed = stop
        value = np.float32(velocity[i]) / np.float32(127.0)
        p = pitch[i]
        for frame in range(first, stop):
            roll[frame, p] = max(roll[frame, p], value)
    roll[zeroed:] = 0.0


# --- pitch_distribution ----------------------------------------------------------------------------


@numba.njit(cache=True)
def pitch_shares(pitch: np.ndarray, is_drum: np.ndarray) -> tuple[np.ndarray, int, bool]:
    """(share of the non-drum notes per MIDI pitch 0..127 in float32 [128], their number, whether one has a negative pitch).

    A share is count / number of notes in float64, then rounded to float32; higher pitches are not counted.
    """
    counts = np.zeros(128, np.int64)
    negative = False
    for i in range(pitch.size):
        if not is_drum[i]:
            negative |= pitch[i] < 0
            if 0 <= pitch[i] < 128:
                counts[pitch[i]] += 1
    total = counts.sum()
    shares = np.zeros(128, np.float32)
    if total:
        for p in range(128):
            shares[p] = counts[p] / total
    return shares, total, negative


# --- dynamics_features -----------------------------------------------------------------------------

_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE


@numba.njit(cache=True)
def _term(x: np.ndarray, i: int, center: float, squared: bool) -> float:
    """x[i], or (x[i] - center) ** 2 computed as numpy's `d = x - center; d * d` does."""
    if squared:
        d = x[i] - center
        return d * d
    return x[i]


@numba.njit(cache=True)
def _block_sum(x: np.ndarray, lo: int, n: int, center: float, squared: bool) -> float:
    """numpy's sum of a block of at most 128 terms: 8 interleaved partial sums, then the rest in order."""
    if n < 8:
        total = 0.0
        for i in range(lo, lo + n):
            total += _term(x, i, center, squared)
        return total
    r0, r1 = _term(x, lo, center, squared), _term(x, lo + 1, center, squared)
    r2, r3 = _term(x, lo + 2, center, squared), _term(x, lo + 3, center, squared)
    r4, r5 = _term(x, lo + 4, center, squared), _term(x, lo + 5, center, squared)
    r6, r7 = _term(x, lo + 6, center, squared), _term(x, lo + 7, center, squared)
    i = lo + 8
    stop = lo + n - n % 8
    while i < stop:
        r0 += _term(x, i, center, squared)
        r1 += _term(x, i + 1, center, squared)
        r2 += _term(x, i + 2, center, squared)
        r3 += _term(x, i + 3, center, squared)
        r4 += _term(x, i + 4, center, squared)
        r5 += _term(x, i + 5, center, squared)
        r6 += _term(x, i + 6, center, squared)
        r7 += _term(x, i + 7, center, squared)
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for j in range(i, lo + n):
        total += _term(x, j, center, squared)
    return total


@numba.njit(cache=True)
def _pairwise_sum(x: np.ndarray, center: float = 0.0, squared: bool = False) -> float:
    """np.add.reduce of a contiguous float64 array (or of its squared deviations from `center`), bit for bit.

    numpy sums pairwise: it halves a range (the first half rounded down to a multiple of 8) until
    it holds at most 128 terms, sums those with `_block_sum` and adds the halves' sums. The
    recursion runs here on explicit stacks (numba's cached code and recursion do not mix), and
    squared deviations are made as they are summed (numpy makes the array first: same values).
    """
    if x.size <= _PAIRWISE_BLOCK:
        return 0.0 + _block_sum(x, 0, x.size, center, squared)
    todo_lo, todo_n = np.empty(192, np.int64), np.empty(192, np.int64)  # 3 entries per halving, < 64 halvings
    todo_split = np.zeros(192, np.bool_)  # the range's halves are summed: add their sums
    sums = np.empty(64)
    todo_lo[0], todo_n[0], top, n_sums = 0, x.size, 1, 0
    while top:
        top -= 1
        lo, n = todo_lo[top], todo_n[top]
        if todo_split[top]:
            todo_split[top] = False
            n_sums -= 1
            sums[n_sums - 1] += sums[n_sums]
        elif n <= _PAIRWISE_BLOCK:
            sums[n_sums] = _block_sum(x, lo, n, center, squared)
            n_sums += 1
        else:
            half = n // 2
            half -= half % 8
            todo_split[top] = True  # revisited after both halves, the left one first
            todo_lo[top + 1], todo_n[top + 1] = lo + half, n - half
            todo_lo[top + 2], todo_n[top + 2] = lo, half
            top += 3
    return 0.0 + sums[0]


@numba.njit(cache=True)
def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """(x.mean(), x.std()) as numpy computes them; (0.0, 0.0) for an empty array."""
    n = x.size
    if n == 0:
        return 0.0, 0.0
    mean = _pairwise_sum(x) / n
    return mean, np.sqrt(_pairwise_sum(x, mean, True) / n)


@numba.njit(cache=True)
def _sift_down(x: np.ndarray, root: int, size: int) -> None:
    while True:
        child = 2 * root + 1
        if child >= size:
            return
        if child + 1 < size and x[child + 1] > x[child]:
            child += 1
        if not x[child] > x[root]:
            return
        x[root], x[child] = x[child], x[root]
        root = child


@numba.njit(cache=True)
def _heapsort(x: np.ndarray) -> None:
    """Sort a NaN-free float64 array in place (O(n log n) on any input; a few lines to compile)."""
    for root in range(x.size // 2 - 1, -1, -1):
        _sift_down(x, root, x.size)
    for size in range(x.size - 1, 0, -1):
        x[0], x[size] = x[size], x[0]
        _sift_down(x, 0, size)


_SIGN = np.int64(-(2**63))  # the sign bit
_LOW_63 = np.int64(2**63 - 1)  # all other bits


@numba.njit(cache=True)
def _ordered_bits(x: np.ndarray) -> np.ndarray:
    """Integers in the order of the float64 values x: their bits, the low 63 flipped for negative values."""
    bits = x.view(np.int64).copy()
    for i in range(bits.size):
        bits[i] ^= (bits[i] >> 63) & _LOW_63
    return bits


@numba.njit(cache=True)
def _kth_smallest(x: np.ndarray, k: int) -> float:
    """The k-th smallest (0-based) of finite float64 values, by radix selection on their bits.

    Each pass counts the candidates' next 8 bits (from the first the values do not all share, in
    unsigned order) and keeps those in the bucket that holds rank k: branch-free loops, unlike a
    quickselect, whose comparisons the processor cannot predict. A handful left are sorted by insertion.
    """
    keys = _ordered_bits(x)
    low, high = keys.min(), keys.max()
    m, shift = keys.size, 56
    while shift > 0 and (low ^ high) >> shift == 0:  # the top bytes all the values share: no pass over them
        shift -= 8
    counts = np.empty(256, np.int64)
    while m > 16 and shift >= 0:
        counts[:] = 0
        for i in range(m):
            counts[((keys[i] ^ _SIGN) >> shift) & 255] += 1
        bucket = 0
        while k >= counts[bucket]:
            k -= counts[bucket]
            bucket += 1
        kept = 0
        for i in range(m):
            keys[kept] = keys[i]
            kept += ((keys[i] ^ _SIGN) >> shift) & 255 == bucket
        m, shift = kept, shift - 8
    for i in range(1, m):  # insertion sort of the last few
        key, j = keys[i], i - 1
        while j >= 0 and keys[j] > key:
            keys[j + 1] = keys[j]
            j -= 1
        keys[j + 1] = key
    value = keys[k : k + 1].copy()
    value[0] ^= (value[0] >> 63) & _LOW_63  # back to the float's bits
    return value.view(np.float64)[0]


@numba.njit(cache=True)
def _median(x: np.ndarray) -> float:
    """np.median of a non-empty array of finite float64 values (the middle one, or the mean of the two middle ones)."""
    k = x.size // 2
    upper = _kth_smallest(x, k)
    if x.size % 2:
        return upper
    below, lower = 0, -np.inf  # the (k-1)-th: the largest value under `upper`, or `upper` again if it repeats
    for v in x:
        smaller = v < upper
        below += smaller
        lower = max(lower, v) if smaller else lower
    return ((lower if below == k else upper) + upper) / 2.0


@numba.njit(cache=True)
def _distinct_steps(times: np.ndarray, steps: np.ndarray) -> tuple[int, bool]:
    """Write the positive steps between consecutive times into `steps`: (how many, whether no step is negative)."""
    m, in_order = 0, True
    for i in range(1, times.size):
        step = times[i] - times[i - 1]
        in_order &= step >= 0.0
        steps[m] = step
        m += step > 0.0
    return m, in_order


@numba.njit(cache=True)
def _onset_intervals(start: np.ndarray) -> np.ndarray:
    """Intervals between consecutive distinct onsets (np.diff of the sorted distinct start times)."""
    intervals = np.empty(max(start.size - 1, 0))
    m, in_order = _distinct_steps(start, intervals)
    if not in_order:  # read_notes gives the starts sorted; hand-made notes may not come so
        ordered = start.copy()
        _heapsort(ordered)
        m, in_order = _distinct_steps(ordered, intervals)
    return intervals[:m]


@numba.njit(cache=True)
def _last_end(end: np.ndarray) -> float:
    """end.max() of a non-empty array of finite times, with four running maxima (a single one is a dependency chain)."""
    m0 = m1 = m2 = m3 = end[0]
    stop = end.size - end.size % 4
    for i in range(0, stop, 4):
        m0, m1, m2, m3 = max(m0, end[i]), max(m1, end[i + 1]), max(m2, end[i + 2]), max(m3, end[i + 3])
    for i in range(stop, end.size):
        m0 = max(m0, end[i])
    return max(max(m0, m1), max(m2, m3))


@numba.njit(cache=True)
def velocity_histogram(velocity: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(histogram of the velocities clipped to 0..127 in float64 [128], their mean, (v - mean) ** 2 for v = 0..127).

    At least one velocity. The mean is exact (an integer sum over n); the squared deviations are
    numpy's `d = arange(128) - mean; d * d`.
    """
    counts = np.zeros(128)
    total = 0
    for v in velocity:
        clipped = min(max(v, 0), 127)
        counts[clipped] += 1.0
        total += clipped
    mean = total / velocity.size
    squares = np.empty(128)
    for v in range(128):
        d = v - mean
        squares[v] = d * d
    return counts, mean, squares


@numba.njit(cache=True)
def dynamics_kernel(
    counts: np.ndarray, mean: float, std: float, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """`dynamics_features` from the velocity histogram, its mean and std, and the notes' (finite) times; n >= 1."""
    n = start.size
    low, high = 127, 0
    hist = np.zeros(4)
    accent, below = 0.0, 0.0
    median_low, median_high = -1, -1
    for v in range(128):
        if counts[v] > 0:
            low, high = min(low, v), max(high, v)
        hist[v // 32] += counts[v]
        if v > mean + std:
            accent += counts[v]
        below += counts[v]  # the median: np.searchsorted(np.cumsum(counts), [(n - 1) // 2 + 1, n // 2 + 1])
        if median_low < 0 and below >= (n - 1) // 2 + 1:
            median_low = v
        if median_high < 0 and below >= n // 2 + 1:
            median_high = v
    length = np.empty(n)
    for i in range(n):
        length[i] = end[i] - start[i]
    length_mean, length_std = _mean_std(length)
    ioi_mean, ioi_std = _mean_std(_onset_intervals(start))
    duration = _last_end(end)
    out = np.empty(16, np.float32)
    out[0], out[1], out[2] = mean / 127.0, std / 127.0, (high - low) / 127.0
    out[3] = (median_low + median_high) / 2.0 / 127.0
    for b in range(4):
        out[4 + b] = hist[b] / n
    out[8], out[9], out[10] = length_mean, length_std, _median(length)
    out[11], out[12] = ioi_mean, ioi_std
    out[13] = accent / n if std > 0 else 0.0
    out[14] = n / duration if duration > 0 else 0.0
    out[15] = duration
    return out
