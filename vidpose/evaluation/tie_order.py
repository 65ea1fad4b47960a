"""numpy's generic introsort argsort, reproduced with array operations (no compiled code).

poseval and the PoseTrack21 kit rank each joint's detections with ``np.argsort(scores)[::-1]``:
numpy's default ``quicksort`` kind, which is not stable, so the order of tied scores is whatever
the sort produces. Up to numpy 1.24 every CPU ran the same generic introsort (and the PT21 kit
pins numpy 1.22); from 1.25 on AVX-512 CPUs (2.0 on AVX2) ``argsort`` dispatches to a SIMD sort
that orders ties differently, so the AP of tied scores would follow the machine.
:func:`introsort_argsort` returns the generic introsort's permutation on every machine.

The generic algorithm (numpy's ``aquicksort_``, the same from 1.17 through 2.x):

- a segment of more than 16 elements is partitioned around the median of its first, middle and
  last element (Hoare scheme: the pivot is parked next to the last element, a left scan stops at
  elements not below it, a right scan at elements not above it, and the two stopped elements
  are swapped until the scans cross; the pivot then goes to the left scan's stop);
- a segment of at most 16 elements is insertion-sorted, which is stable;
- the larger part of each partition is stacked with a depth budget of ``2 * floor(log2(n))``
  minus its nesting level; a stacked part found over budget is heap-sorted instead. The smaller
  part is partitioned on without that check.

Disjoint segments do not interact, so every segment of one nesting level is partitioned at once:
the k-th left stop pairs with the k-th right stop (in the array as it is before the scans), the
pairs are swapped while the left stop lies before the right one, and the pivot lands at the
first left stop that does not, or at the previous right stop if that comes first. Insertion
sorts become one stable sort; only the heap-sort fallback, which needs adversarial input, runs
element by element.
"""

from __future__ import annotations

import numpy as np

__all__ = ["introsort_argsort"]

# numpy partitions segments with more than this many elements and insertion-sorts the rest
_SMALL_SEGMENT = 16


def introsort_argsort(values: np.ndarray) -> np.ndarray:
    """Indices sorting 1-D ``values`` ascending in the order of numpy's generic introsort argsort.

    Equal to ``np.argsort(values)`` under numpy < 1.25, or any numpy with its SIMD sort disabled.
    NaNs sort last, as in numpy.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"introsort_argsort: expected a 1-D array, got shape {values.shape}")
    ascending = np.argsort(values, kind="stable")
    ranked = values[ascending]
    tied = ranked[1:] == ranked[:-1]
    if ranked.dtype.kind == "f":  # numpy's sort compares NaNs as equal (and sorts them last)
        tied |= np.isnan(ranked[1:]) & np.isnan(ranked[:-1])
    if not tied.any():
        return ascending  # without ties every correct sort gives the same permutation
    # dense ranks compare exactly as the values do, and integers compare fast
    keys = np.empty(len(values), dtype=np.int64)
    keys[ascending] = np.concatenate(([0], np.cumsum(~tied)))
    return _introsort(keys)


def _introsort(keys: np.ndarray) -> np.ndarray:
    """The introsort permutation of integer ``keys`` (dense ranks: same comparisons as values)."""
    order = np.arange(len(keys))
    lo, hi = np.array([0]), np.array([len(keys) - 1])
    depth, checked = np.array([2 * _msb(len(keys))]), np.array([True])
    small_lo, small_hi = [], []
    while len(lo):
        heap = checked & (depth < 0)
        for first, last in zip(lo[heap].tolist(), hi[heap].tolist()):
            _heapsort(keys, order, first, last)
        big = ~heap & (hi - lo >= _SMALL_SEGMENT)
        small = ~heap & ~big
        small_lo.append(lo[small])
        small_hi.append(hi[small])
        lo, hi, depth, checked = _partition(keys, order, lo[big], hi[big], depth[big])
    _stable_sort_segments(keys, order, np.concatenate(small_lo), np.concatenate(small_hi))
    return order


def _msb(n: int) -> int:
    """floor(log2(n)) for n >= 1, 0 for n = 0 (numpy's ``npy_get_msb``)."""
    return max(n.bit_length() - 1, 0)


def _segment_positions(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment number, position) of every position of the inclusive ranges ``lo[s]..hi[s]``."""
    sizes = np.maximum(hi - lo + 1, 0)
    segment = np.repeat(np.arange(len(lo)), sizes)
    offsets = np.cumsum(sizes) - sizes
    return segment, np.arange(int(sizes.sum())) - offsets[segment] + lo[segment]


def _swap_if_less(keys: np.ndarray, order: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Swap ``order[a]`` and ``order[b]`` where the key at ``a`` is below the key at ``b``."""
    less = keys[order[a]] < keys[order[b]]
    a, b = a[less], b[less]
    order[a], order[b] = order[b], order[a]


def _partition(
    keys: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray, depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Partition every segment ``lo..hi`` once; its two parts as (lo, hi, depth, checked)."""
    mid = lo + ((hi - lo) >> 1)
    _swap_if_less(keys, order, mid, lo)
    _swap_if_less(keys, order, hi, mid)
    _swap_if_less(keys, order, mid, lo)
    pivot = keys[order[mid]]
    order[mid], order[hi - 1] = order[hi - 1], order[mid]
    split = _hoare_scans(keys, order, lo, hi, pivot)
    order[split], order[hi - 1] = order[hi - 1], order[split]
    left_smaller = split - lo < hi - split
    return (
        np.concatenate([lo, split + 1]),
        np.concatenate([split - 1, hi]),
        np.concatenate([depth - 1, depth - 1]),
        # the larger part goes on numpy's stack and has its budget checked when popped
        np.concatenate([~left_smaller, left_smaller]),
    )


def _hoare_scans(
    keys: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray, pivot: np.ndarray
) -> np.ndarray:
    """Run the two scans of every segment (pivot parked at ``hi - 1``); where each scan meets."""
    segment, position = _segment_positions(lo, hi)
    key, seg_pivot = keys[order[position]], pivot[segment]
    # the left scan covers lo+1..hi-1 (stopped by the parked pivot at the latest), the right
    # scan hi-2..lo (stopped by the median-of-3 minimum at lo at the latest)
    left = (key >= seg_pivot) & (position > lo[segment]) & (position < hi[segment])
    right = (key <= seg_pivot) & (position < hi[segment] - 1)
    left_pos, right_pos = position[left], position[right]
    n_left = np.bincount(segment[left], minlength=len(lo))
    n_right = np.bincount(segment[right], minlength=len(lo))
    n_pairs = np.minimum(n_left, n_right)  # >= 1: both sentinels are stops
    pair_segment = np.repeat(np.arange(len(lo)), n_pairs)
    pair_start = np.cumsum(n_pairs) - n_pairs
    k = np.arange(int(n_pairs.sum())) - pair_start[pair_segment]
    left_stop = left_pos[(np.cumsum(n_left) - n_left)[pair_segment] + k]
    right_stop = right_pos[np.cumsum(n_right)[pair_segment] - 1 - k]
    # the scans cross within the pairs: the last left stop (hi-1) lies after every right stop
    crossed = np.where(left_stop >= right_stop, k, len(k))
    first_crossed = np.minimum.reduceat(crossed, pair_start)
    swap = k < first_crossed[pair_segment]
    a, b = left_stop[swap], right_stop[swap]
    order[a], order[b] = order[b], order[a]
    at = pair_start + first_crossed
    split = left_stop[at]
    # after a swap the previous right stop holds an element not below the pivot
    after_swap = first_crossed > 0
    split[after_swap] = np.minimum(split[after_swap], right_stop[at[after_swap] - 1])
    return split


def _stable_sort_segments(
    keys: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> None:
    """Insertion-sort every segment ``lo..hi`` of ``order``, i.e. sort it stably by key."""
    segment, position = _segment_positions(lo, hi)
    items = order[position]
    order[position] = items[np.lexsort((keys[items], segment))]


def _heapsort(keys: np.ndarray, order: np.ndarray, first: int, last: int) -> None:
    """numpy's ``aheapsort_`` on ``order[first..last]`` (the over-budget fallback)."""
    items = order[first : last + 1].copy()
    key = keys[items].tolist()
    size = len(items)
    heap = [0, *range(size)]  # 1-based, as numpy indexes its heap; entries index ``items``
    for start in range(size // 2, 0, -1):
        _sift_down(heap, key, start, size)
    for end in range(size, 1, -1):
        heap[1], heap[end] = heap[end], heap[1]
        _sift_down(heap, key, 1, end - 1)
    order[first : last + 1] = items[heap[1:]]


def _sift_down(heap: list[int], key: list[int], start: int, size: int) -> None:
    """Move ``heap[start]`` down past larger children in the heap ``heap[1..size]``."""
    item, i, child = heap[start], start, 2 * start
    while child <= size:
        if child < size and key[heap[child]] < key[heap[child + 1]]:
            child += 1
        if not key[item] < key[heap[child]]:
            break
        heap[i] = heap[child]
        i, child = child, 2 * child
    heap[i] = item
