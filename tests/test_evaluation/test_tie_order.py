"""introsort_argsort against numpy's own generic introsort, run with its SIMD sorts disabled.

numpy's argsort dispatches to SIMD code on AVX2/AVX-512 CPUs (numpy >= 1.25 / 2.0) and orders
ties differently; with every dispatch target disabled through NPY_DISABLE_CPU_FEATURES it runs
the generic introsort that numpy < 1.25 ran everywhere, which is the reference here. On a CPU
without those features numpy uses the generic sort anyway and the comparison still holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vidpose.evaluation import tie_order
from vidpose.evaluation.tie_order import introsort_argsort

try:  # numpy 2
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:  # numpy 1
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

# Runs in a fresh interpreter: reports whether every dispatch target is off, and the orders.
_GENERIC_ARGSORT = """
import json, sys
import numpy as np
try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
arrays = json.load(sys.stdin)
print(json.dumps({
    "dispatch_on": [t for t in __cpu_dispatch__ if __cpu_features__.get(t)],
    "orders": [np.argsort(np.array(a, dtype=np.float64)).tolist() for a in arrays],
}))
"""


def _simd_argsort_here() -> bool:
    """Whether this process's numpy argsorts float64 with SIMD code (x86-simd-sort): numpy >=
    1.25 on AVX-512, >= 2.0 on AVX2 (dispatch target names differ between numpy versions)."""
    version = tuple(int(p) for p in np.__version__.split(".")[:2])
    enabled = {t for t in __cpu_dispatch__ if __cpu_features__.get(t)}
    avx512 = {"AVX512_SKX", "AVX512_ICL", "AVX512_SPR", "X86_V4"}
    avx2 = {"AVX2", "X86_V3"}
    return (version >= (1, 25) and bool(enabled & avx512)) or (
        version >= (2, 0) and bool(enabled & avx2)
    )


def _generic_argsorts(arrays: list[np.ndarray]) -> list[list[int]]:
    """numpy's default argsort of each array in a subprocess with every SIMD target disabled."""
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(__cpu_dispatch__))
    proc = subprocess.run(
        [sys.executable, "-c", _GENERIC_ARGSORT],
        input=json.dumps([a.tolist() for a in arrays]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["dispatch_on"] == [], f"dispatch targets still enabled: {out['dispatch_on']}"
    return out["orders"]


def _tied_arrays() -> list[np.ndarray]:
    """Heavily tied arrays of sizes around the insertion-sort cutoff (16) and far above it."""
    rng = np.random.default_rng(17)
    arrays = []
    for n in (2, 3, 7, 16, 17, 18, 31, 33, 64, 100, 257, 1000, 5000, 20000):
        arrays.append(rng.integers(0, 2, n).astype(float))  # two values
        arrays.append(rng.integers(0, max(n // 8, 2), n).astype(float))  # ~8 copies each
        arrays.append(np.round(rng.random(n), 2))  # quantised scores
        arrays.append(np.sort(rng.integers(0, 4, n))[::-1].astype(float))  # descending runs
    arrays.append(np.full(40, -9999.0))  # all equal (missing scores)
    arrays.append(np.array([0.5, np.nan, 0.5, -0.0, 0.0, np.nan] * 5))  # NaN last, -0.0 == 0.0
    return arrays


def _heapsort_killer(n: int) -> np.ndarray:
    """Distinct values that drive numpy's introsort over its depth budget (McIlroy's adversary).

    numpy sorts object arrays with the same generic introsort, calling ``<`` on the items, so
    the adversary decides each item's value lazily: undecided items are above all decided ones,
    and of two undecided items the one the algorithm is about to use as a pivot gets decided
    first (smallest). Every partition then splits off only its pivot candidates.
    """
    undecided = n
    value = [undecided] * n
    state = {"next": 0, "candidate": 0}

    def decide(i: int) -> None:
        value[i] = state["next"]
        state["next"] += 1

    class Item:
        def __init__(self, i: int) -> None:
            self.i = i

        def __lt__(self, other: Item) -> bool:
            x, y = self.i, other.i
            if value[x] == undecided and value[y] == undecided:
                decide(x if x == state["candidate"] else y)
            if value[x] == undecided:
                state["candidate"] = x
            elif value[y] == undecided:
                state["candidate"] = y
            return value[x] < value[y]

        def __gt__(self, other: Item) -> bool:
            return other.__lt__(self)

    np.argsort(np.array([Item(i) for i in range(n)], dtype=object))
    for i in range(n):
        if value[i] == undecided:
            decide(i)
    return np.array(value, dtype=float)


def _with_ties_in_the_heap(values: np.ndarray, heap_items: np.ndarray) -> np.ndarray:
    """Group the heap-sorted values into ties of four. The quicksort phase compared them only
    with smaller pivots, so it still ends in the heap sort, which now sees ties (asserted)."""
    low = values[heap_items].min()
    tied = values.copy()
    top = values >= low
    tied[top] = low + (values[top] - low) // 4
    return tied


@pytest.fixture(scope="module")
def heap_cases() -> list[np.ndarray]:
    """Adversarial inputs with ties whose introsort ends in the heap-sort fallback."""
    cases = []
    for n in (100, 1000):
        killer = _heapsort_killer(n)
        heaps = _heap_calls(killer)
        assert heaps, f"the adversary of size {n} did not reach the heap sort"
        cases.append(_with_ties_in_the_heap(killer, heaps[0][1]))
    return cases


def _heap_calls(values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(keys, items) of every heap sort of the introsort emulation of ``values``."""
    calls = []
    real = tie_order._heapsort

    def spy(keys, order, first, last):
        calls.append((keys, order[first : last + 1].copy()))
        real(keys, order, first, last)

    patch = pytest.MonkeyPatch()
    patch.setattr(tie_order, "_heapsort", spy)
    try:
        # the emulation on dense ranks, as introsort_argsort runs it (also for distinct values)
        tie_order._introsort(np.unique(values, return_inverse=True)[1].reshape(-1))
    finally:
        patch.undo()
    return calls


@pytest.fixture(scope="module")
def reference(heap_cases) -> tuple[list[np.ndarray], list[list[int]]]:
    """All test arrays and numpy's generic orders of them (one subprocess)."""
    arrays = _tied_arrays() + heap_cases
    return arrays, _generic_argsorts(arrays)


def test_equals_numpy_generic_introsort_on_tied_arrays(reference):
    arrays, generic = reference
    mismatched = [
        len(a) for a, order in zip(arrays, generic) if introsort_argsort(a).tolist() != order
    ]
    assert mismatched == []
    # with the SIMD sort active here, this process orders ties differently from the subprocess:
    # the environment variable really switched the subprocess to the generic sort
    differing = [a for a, order in zip(arrays, generic) if np.argsort(a).tolist() != order]
    assert bool(differing) == _simd_argsort_here()


def test_heap_sort_fallback_with_ties_equals_numpy(reference, heap_cases):
    arrays, generic = reference
    for case in heap_cases:
        heaps = _heap_calls(case)
        assert heaps and any(
            len(np.unique(keys[items])) < len(items) for keys, items in heaps
        ), "the heap sort saw no ties"
        order = generic[next(i for i, a in enumerate(arrays) if a is case)]
        assert introsort_argsort(case).tolist() == order


def test_small_ties_keep_insertion_order():
    # up to 16 elements numpy insertion-sorts: stable
    values = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    assert introsort_argsort(values).tolist() == [1, 3, 5, 0, 2, 4]


def test_without_ties_is_the_sorting_permutation_and_needs_1d():
    values = np.array([0.3, -1.0, 2.5, 0.0])
    assert introsort_argsort(values).tolist() == [1, 3, 0, 2]
    assert introsort_argsort(np.zeros(0)).tolist() == []
    with pytest.raises(ValueError, match=r"expected a 1-D array, got shape \(2, 2\)"):
        introsort_argsort(np.zeros((2, 2)))
