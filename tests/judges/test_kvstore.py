"""PrefixStore: the longest shared prefix is found, the memory bound holds, extended entries give way."""

from __future__ import annotations

from judges.backends.kvstore import PrefixStore, common_prefix
import numpy as np


def test_common_prefix() -> None:
    a = np.array([1, 2, 3, 4])
    assert common_prefix(a, np.array([1, 2, 9])) == 2
    assert common_prefix(a, np.array([1, 2])) == 2
    assert common_prefix(a, a) == 4
    assert common_prefix(a, np.array([], dtype=np.int64)) == 0
    assert common_prefix(a, np.array([7])) == 0


def test_longest_shared_prefix_wins_within_its_space() -> None:
    s = PrefixStore(1000)
    s.put("streams", [1, 2, 3], "abc", 10)
    s.put("streams", [1, 2, 7, 8, 9], "long", 10)
    s.put("streams", [5, 6], "other", 10)
    s.put("single", [1, 2, 7], "elsewhere", 10)
    assert s.longest([1, 2, 3, 4], "streams") == (3, s.longest([1, 2, 3], "streams")[1])
    n, saved = s.longest([1, 2, 7, 8, 0], "streams")
    assert (n, saved.state) == (4, "long")
    n, saved = s.longest([1, 2, 7, 8, 0], "single")  # only what was saved in that space can be restored there
    assert (n, saved.state) == (3, "elsewhere")
    assert s.longest([9, 9], "streams") == (0, None) and s.longest([5, 6], "nowhere") == (0, None)
    s.put("single", [1, 2, 7, 8], "extends elsewhere", 10)  # replaces its own space's entry only
    assert len(s) == 4 and s.longest([1, 2, 7, 8, 9], "streams")[1].state == "long"


def test_memory_bound_evicts_least_recently_used() -> None:
    s = PrefixStore(25)
    s.put("a", [1], "a", 10)
    s.put("a", [2], "b", 10)
    s.longest([1], "a")  # touch "a": "b" is now the oldest
    s.put("a", [3], "c", 10)
    assert s.nbytes == 20 and len(s) == 2
    assert s.longest([2], "a") == (0, None)
    assert s.longest([1], "a")[1].state == "a" and s.longest([3], "a")[1].state == "c"
    assert not s.put("a", [4], "too big", 26) and len(s) == 2  # larger than the whole budget: not kept
    assert not PrefixStore(0).put("a", [1], "x", 1)


def test_an_entry_extending_another_replaces_it() -> None:
    s = PrefixStore(100)
    s.put("a", [1, 2], "short", 10)
    s.put("a", [1, 2, 3, 4], "longer", 30)
    assert len(s) == 1 and s.nbytes == 30
    assert s.longest([1, 2, 5], "a")[1].state == "longer"  # serves what the short one served
    s.put("a", [1, 2, 3, 4], "same again", 30)
    assert len(s) == 1 and s.nbytes == 30
