"""A memory-bounded store of evaluated prompt prefixes, found again by longest common prefix.

On a CPU a refine is bound by prompt evaluation (about 12 ms a token for the 1.5B judge on 2 cores), and most of
its prompts repeat a long part another call already evaluated: the k criteria of one response, the next wave of
criteria for the same six responses after a decomposition, a repair turn re-sending its conversation, the
decompositions of rubrics that the same samples satisfy. One resident prefix is lost at the next call that starts
differently, and a refine interleaves all of these. Restoring a saved state is a memory copy (about 28 KB a token
for the 1.5B judge), hundreds of times cheaper than evaluating it again.

The store knows nothing of llama.cpp: a state is whatever object the engine saved, with its size in bytes, and the
`space` it can be restored into (llama.cpp restores a sequence's state only into a context of the shape that
saved it). Entries are evicted least recently used first; an entry is dropped when a newer one of its space
extends it (the newer one serves every prompt the older one served).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two 1-D token arrays."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass(frozen=True)
class Saved:
    """One evaluated prefix: its tokens and the engine's saved state of them."""

    space: Hashable
    tokens: np.ndarray
    state: Any
    nbytes: int


class PrefixStore:
    """Saved prefix states within `max_bytes`, least recently used evicted first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[tuple[Hashable, bytes], Saved] = OrderedDict()
        self.nbytes = 0
        #: tokens served by restores, and restores made: the store's worth, for benchmarks and tests
        self.restored_tokens = 0
        self.restores = 0

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, tokens: Sequence[int], space: Hashable) -> tuple[int, Saved | None]:
        """The entry of `space` sharing the longest prefix with `tokens`, and that prefix's length."""
        want = np.asarray(tokens, dtype=np.int64)
        best, found = 0, None
        for key, entry in self._entries.items():
            if entry.space != space:
                continue
            n = common_prefix(entry.tokens, want)
            if n > best:
                best, found = n, key
        if found is None:
            return 0, None
        self._entries.move_to_end(found)
        return best, self._entries[found]

    def count_restore(self, tokens: int) -> None:
        self.restores += 1
        self.restored_tokens += tokens

    def put(self, space: Hashable, tokens: Sequence[int], state: Any, nbytes: int) -> bool:
        """Keep `state` (the evaluated `tokens`, restorable into `space`) if it fits in the budget at all; False
        if it does not."""
        if nbytes > self.max_bytes:
            return False
        arr = np.asarray(tokens, dtype=np.int64)
        for key in [k for k, e in self._entries.items()
                    if e.space == space and common_prefix(e.tokens, arr) == len(e.tokens)]:
            self._drop(key)  # the new entry starts with this one: it serves all the old one served
        while self._entries and self.nbytes + nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[(space, arr.tobytes())] = Saved(space, arr, state, nbytes)
        self.nbytes += nbytes
        return True

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: tuple[Hashable, bytes]) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
