"""Grouping requests by shared prompt prefix, so a local backend runs each shared prefix once.

Grading prompts put the long response first and the short criterion last (judges/templates.py), so the k criteria
of one response share almost their whole prompt; the N samples of one prompt share all of it.
"""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_prefix_groups(
    seqs: Sequence[Sequence[int]], *, min_prefix: int = 16, max_depth: int = 64
) -> list[tuple[int, list[int]]]:
    """Partition requests into groups that share a prompt prefix: [(prefix_len, indices)].

    Sequences are sorted so shared prefixes are adjacent; a contiguous run's shared prefix is the minimum of its
    neighbours' common prefixes. We split runs at their weakest link whenever the parts save more tokens than the
    whole ((members - 1) * prefix), so the criteria of two responses that only share the system prompt become two
    groups, not one group sharing only the system prompt. Each group's prefix leaves every member at least one
    token, whose logits start generation. Requests in no group come back with prefix_len 0, one index each.
    """
    n = len(seqs)
    order = sorted(range(n), key=lambda i: list(seqs[i]))
    adj = [common_prefix_len(seqs[order[k]], seqs[order[k + 1]]) for k in range(n - 1)]

    def shared(lo: int, hi: int) -> int:
        if hi - lo < 2:
            return 0
        p = min(min(adj[lo : hi - 1]), min(len(seqs[order[k]]) - 1 for k in range(lo, hi)))
        return p if p >= min_prefix else 0

    def best(lo: int, hi: int, depth: int) -> tuple[int, list[tuple[int, int, int]]]:
        whole_p = shared(lo, hi)
        whole = ((hi - lo - 1) * whole_p, [(lo, hi, whole_p)] if whole_p else [])
        if hi - lo < 3 or depth >= max_depth:
            return whole
        cut_at = min(adj[lo : hi - 1])
        cuts = [k + 1 for k in range(lo, hi - 1) if adj[k] == cut_at]
        if len(cuts) == hi - lo - 1 and whole_p:  # all links equal: splitting cannot beat the whole
            return whole
        total, segs = 0, []
        for a, b in zip([lo, *cuts], [*cuts, hi]):
            s, sg = best(a, b, depth + 1)
            total += s
            segs.extend(sg)
        return (total, segs) if total > whole[0] else whole

    groups: list[tuple[int, list[int]]] = []
    grouped: set[int] = set()
    if n:
        for lo, hi, p in best(0, n, 0)[1]:
            members = [order[k] for k in range(lo, hi)]
            groups.append((p, members))
            grouped.update(members)
    groups.extend((0, [i]) for i in range(n) if i not in grouped)
    return groups
