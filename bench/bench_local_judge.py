"""Local judge throughput: criteria graded per second with and without KV-prefix reuse.

Grades C criteria x R responses (one criterion per call, templates.grade_single, P(YES) from the first token's
top-20 logprobs) with the in-process LocalBackend. With prefix reuse the system prompt + response of each
response is run once and only the short criterion tails run per criterion; without it every call runs its full
prompt. Prints both rates, the speedup, and how far the two runs' P(YES) differ.

    python bench/bench_local_judge.py [--model qwen2.5-coder-1.5b] [--responses 8] [--criteria 20]
        [--dtype bfloat16] [--max-batch 16] [--threads N] [--baseline-responses R]

The first run with the Qwen judge assembles and dequantizes the GGUF (minutes); that time is printed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judges import parsing, templates
from judges.backends.local import LocalBackend
from judges.models import resolve_local_model
from judges.types import Completion, Request, SamplingParams

PROMPTS_AND_RESPONSES: list[tuple[str, str]] = [
    (
        "How do I read a large CSV file in Python without running out of memory?",
        (
            "Loading a multi-gigabyte CSV with pandas.read_csv in one call builds the whole DataFrame in memory, which "
            "is what usually exhausts RAM. There are three practical fixes.\n\n"
            "First, stream it in chunks. Passing chunksize returns an iterator of DataFrames, so only one chunk is in "
            "memory at a time:\n\n"
            "```python\nimport pandas as pd\n\ntotal = 0\nfor chunk in pd.read_csv('events.csv', chunksize=100_000):\n"
            "    total += chunk['amount'].sum()\nprint(total)\n```\n\n"
            "Second, load only what you need. usecols drops unused columns at parse time and dtype lets you pick "
            "compact types, for example int32 instead of int64 or category for repeated strings; this alone often "
            "cuts memory by half or more.\n\n"
            "Third, if you only need a row at a time, the standard library csv module reads lazily and uses almost no "
            "memory, though it is slower for numeric work.\n\n"
            "For repeated analysis, convert the file once to Parquet: it is columnar, compressed, and reading two "
            "columns out of fifty only touches those two. Avoid calling df.append in a loop, which copies the frame "
            "every time and is quadratic."
        ),
    ),
    (
        "What is the difference between a process and a thread?",
        (
            "A process is an independent program in execution with its own virtual address space, file descriptors "
            "and resources. A thread is a unit of execution inside a process; all threads of one process share its "
            "memory and open files, but each has its own stack and registers.\n\n"
            "Because threads share memory, communication between them is cheap: they can read and write the same data "
            "structures. The price is that concurrent access must be synchronized with locks, semaphores or atomic "
            "operations, otherwise you get race conditions. Processes communicate through explicit mechanisms such as "
            "pipes, sockets or shared memory segments, which is slower but isolates failures: a crash in one process "
            "does not corrupt another.\n\n"
            "Creating a thread is cheaper than creating a process, and switching between threads of the same process "
            "avoids flushing the TLB. In CPython, the global interpreter lock means only one thread runs Python "
            "bytecode at a time, so CPU-bound work scales with multiprocessing rather than threading, while I/O-bound "
            "work such as network requests benefits from threads or asyncio. In short: use threads for shared-state "
            "concurrency and I/O, processes for isolation and CPU parallelism."
        ),
    ),
    (
        "Write a function that checks whether a string is a palindrome.",
        (
            "Here is a simple and efficient solution in Python. It ignores case and any character that is not a letter "
            "or digit, so phrases like 'A man, a plan, a canal: Panama' count as palindromes.\n\n"
            "```python\ndef is_palindrome(text: str) -> bool:\n    left, right = 0, len(text) - 1\n"
            "    while left < right:\n        while left < right and not text[left].isalnum():\n            left += 1\n"
            "        while left < right and not text[right].isalnum():\n            right -= 1\n"
            "        if text[left].lower() != text[right].lower():\n            return False\n"
            "        left += 1\n        right -= 1\n    return True\n```\n\n"
            "The two-pointer approach walks inward from both ends, so it runs in O(n) time and O(1) extra space, "
            "unlike building a cleaned copy and comparing it with its reverse, which needs O(n) memory. Some examples: "
            "is_palindrome('racecar') returns True, is_palindrome('hello') returns False, and the empty string is a "
            "palindrome. Note that str.lower is not full Unicode case folding; use casefold() if you need to handle "
            "characters such as the German sharp s correctly."
        ),
    ),
    (
        "Explain what a SQL index is and when to use one.",
        (
            "An index is an auxiliary data structure, usually a B-tree, that lets the database find rows matching a "
            "condition without scanning the whole table. Think of the index at the back of a book: instead of reading "
            "every page, you look up the term and jump to the right page.\n\n"
            "Creating one is a single statement:\n\n"
            "```sql\nCREATE INDEX idx_orders_customer ON orders (customer_id);\n```\n\n"
            "After that, a query like SELECT * FROM orders WHERE customer_id = 42 can use an index seek, which is "
            "logarithmic in the table size, instead of a full table scan.\n\n"
            "Indexes are worth adding on columns that appear often in WHERE clauses, JOIN conditions and ORDER BY, "
            "especially on large tables with selective filters. A composite index on (a, b) also serves queries that "
            "filter on a alone, but not on b alone.\n\n"
            "They are not free. Every INSERT, UPDATE and DELETE must also update each index, so write-heavy tables "
            "suffer from too many of them, and each index takes disk space. Low-cardinality columns such as a boolean "
            "flag rarely benefit. Use EXPLAIN to check whether the planner actually uses an index before keeping it."
        ),
    ),
    (
        "How should I store user passwords in my web application?",
        (
            "Never store passwords in plain text and never encrypt them with a reversible cipher. Store a salted hash "
            "computed with a slow, memory-hard password hashing function: Argon2id is the current recommendation, with "
            "bcrypt or scrypt as acceptable alternatives. General-purpose hashes such as SHA-256 or MD5 are far too "
            "fast; an attacker with a GPU can try billions of guesses per second against them.\n\n"
            "A salt is a random value unique to each user, stored next to the hash. It makes identical passwords "
            "produce different hashes and defeats precomputed rainbow tables. Good libraries generate and embed the "
            "salt for you:\n\n"
            "```python\nfrom argon2 import PasswordHasher\n\nph = PasswordHasher()\nstored = ph.hash(password)\n"
            "ph.verify(stored, attempt)  # raises on mismatch\n```\n\n"
            "Tune the cost parameters so that one hash takes roughly a quarter of a second on your servers, and "
            "re-hash on login when you raise them. Compare hashes in constant time, which the library does. Also rate "
            "limit login attempts, support multi-factor authentication, and check new passwords against lists of "
            "breached passwords instead of imposing arbitrary composition rules."
        ),
    ),
    (
        "Why does my recursive Fibonacci function take so long for n = 40?",
        (
            "The naive recursive version recomputes the same values over and over. fib(40) calls fib(39) and fib(38); "
            "fib(39) calls fib(38) again, and so on. The number of calls grows like the Fibonacci numbers themselves, "
            "roughly 1.6 to the power n, so fib(40) makes over three hundred million calls.\n\n"
            "The fix is to remember results you have already computed. In Python, functools.lru_cache does this with "
            "one line:\n\n"
            "```python\nfrom functools import lru_cache\n\n@lru_cache(maxsize=None)\ndef fib(n: int) -> int:\n"
            "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n```\n\n"
            "Now each value is computed once, giving linear time. For very large n, recursion depth becomes the "
            "limit, because Python's default recursion limit is about one thousand frames. An iterative loop avoids "
            "that and needs constant memory:\n\n"
            "```python\ndef fib(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
            "    return a\n```\n\n"
            "If you need huge indices, fast doubling computes fib(n) in O(log n) arithmetic operations."
        ),
    ),
    (
        "What does git rebase do, and should I use it instead of merge?",
        (
            "git rebase moves a sequence of commits so that they start from a new base commit. If your feature branch "
            "was created from main last week and main has moved on, running git rebase main replays each of your "
            "commits on top of the current main, one by one, creating new commits with new hashes. The result is a "
            "linear history, as if you had started your work today.\n\n"
            "git merge instead creates a merge commit that joins the two histories and leaves existing commits "
            "untouched. History is preserved exactly, at the cost of a more tangled graph.\n\n"
            "Rebase is great for cleaning up your own local work before sharing it: interactive rebase, git rebase -i, "
            "lets you squash fixup commits, reorder them and reword messages. The golden rule is never to rebase "
            "commits that others have already pulled, because rewriting shared history forces everyone else to "
            "reconcile duplicated commits.\n\n"
            "A common workflow is to rebase your feature branch on main while it is private, then merge it with a pull "
            "request. If a rebase goes wrong, git rebase --abort restores the original state, and git reflog can "
            "recover commits you thought were lost."
        ),
    ),
    (
        "How do I avoid blocking the event loop in an asyncio application?",
        (
            "The asyncio event loop runs on a single thread, so any call that takes a long time without awaiting "
            "freezes every other task: timers fire late, connections time out and the application looks hung. The "
            "usual culprits are CPU-heavy computation, synchronous libraries such as requests, and time.sleep.\n\n"
            "For blocking I/O with no async alternative, hand it to a worker thread with asyncio.to_thread, which "
            "returns an awaitable:\n\n"
            "```python\nimport asyncio\n\nasync def handler(path: str) -> bytes:\n"
            "    return await asyncio.to_thread(read_file_slowly, path)\n```\n\n"
            "For CPU-bound work, threads do not help much in CPython because of the GIL; use loop.run_in_executor with "
            "a ProcessPoolExecutor instead. Prefer native async libraries where they exist: aiohttp or httpx instead "
            "of requests, asyncpg instead of psycopg2, and asyncio.sleep instead of time.sleep.\n\n"
            "To find offenders, enable debug mode with PYTHONASYNCIODEBUG=1: the loop then logs every callback that "
            "runs longer than 100 milliseconds. Finally, break long loops into pieces and await asyncio.sleep(0) "
            "between them so other tasks get a chance to run."
        ),
    ),
]

CRITERIA: list[str] = [
    "The response includes at least one code block.",
    "The response directly answers the question asked in the prompt.",
    "The response mentions time or space complexity using big-O notation.",
    "The response is written in English.",
    "The response contains a factual error.",
    "The response recommends a specific library, tool or command by name.",
    "The response warns about a pitfall or a common mistake.",
    "The response is longer than 100 words.",
    "The response uses a bulleted or numbered list.",
    "The response mentions security.",
    "The response includes a SQL statement.",
    "The response explains why the problem occurs, not only how to fix it.",
    "The response mentions Python by name or shows Python code.",
    "The response gives a concrete example with specific values.",
    "The response is rude or dismissive toward the user.",
    "The response refers to a specific Python standard library module.",
    "The response discusses a trade-off between two approaches.",
    "The response mentions memory usage.",
    "The response ends with a question to the user.",
    "The response mentions concurrency, threads or parallelism.",
]


def build_requests(n_responses: int, n_criteria: int) -> list[Request]:
    params = SamplingParams(max_tokens=1, logprobs=True, top_logprobs=20)
    pairs = [PROMPTS_AND_RESPONSES[i % len(PROMPTS_AND_RESPONSES)] for i in range(n_responses)]
    crits = [CRITERIA[i % len(CRITERIA)] for i in range(n_criteria)]
    return [
        Request(templates.grade_single(c, response, prompt), params, templates.SINGLE_VERSION)
        for prompt, response in pairs
        for c in crits
    ]


def p_yes(c: Completion) -> float | None:
    return parsing.first_verdict_p_yes(c.logprobs) if c.ok else None


async def timed(backend: LocalBackend, requests: list[Request]) -> tuple[float, list[Completion]]:
    start = time.perf_counter()
    out = await backend.complete(requests)
    return time.perf_counter() - start, out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="registry name, .gguf path or HF folder")
    ap.add_argument("--responses", type=int, default=8)
    ap.add_argument("--criteria", type=int, default=20)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--baseline-responses",
        type=int,
        default=None,
        help="time the no-reuse baseline on only this many responses (it is slow); the rate is per criterion",
    )
    args = ap.parse_args()

    start = time.perf_counter()
    folder = resolve_local_model(args.model)
    print(f"model folder: {folder} (resolve/convert {time.perf_counter() - start:.1f}s)")
    backend = LocalBackend(args.model, dtype=args.dtype, max_batch=args.max_batch, threads=args.threads)
    start = time.perf_counter()
    backend.load()
    print(f"model load: {time.perf_counter() - start:.1f}s ({args.dtype})")

    requests = build_requests(args.responses, args.criteria)
    await backend.complete(build_requests(1, 2))  # warm-up: first-call allocations are not throughput

    n_base = args.responses if args.baseline_responses is None else min(args.responses, args.baseline_responses)
    base_requests = requests[: n_base * args.criteria]
    try:
        backend.prefix_reuse = True
        t_reuse, out_reuse = await timed(backend, requests)
        backend.prefix_reuse = False
        t_base, out_base = await timed(backend, base_requests)
    finally:
        await backend.aclose()

    errors = sum(not c.ok for c in out_reuse + out_base)
    prompt_tokens = sum(c.usage.prompt_tokens for c in out_reuse)
    rate_reuse = len(requests) / t_reuse
    rate_base = len(base_requests) / t_base
    diffs = [
        abs(a - b)
        for a, b in ((p_yes(x), p_yes(y)) for x, y in zip(out_reuse, out_base))
        if a is not None and b is not None
    ]
    unscored = sum(p_yes(c) is None for c in out_reuse)
    print(
        f"{backend.model}: {args.criteria} criteria x {args.responses} responses = {len(requests)} gradings, "
        f"{prompt_tokens / len(requests):.0f} prompt tokens each on average"
    )
    print(f"with prefix reuse:    {rate_reuse:7.2f} criteria/s  ({t_reuse:.1f}s for {len(requests)})")
    print(f"without prefix reuse: {rate_base:7.2f} criteria/s  ({t_base:.1f}s for {len(base_requests)})")
    print(f"speedup: {rate_reuse / rate_base:.1f}x")
    if diffs:
        print(
            f"P(YES) reuse vs no reuse: max |diff| {max(diffs):.4f}, mean {sum(diffs) / len(diffs):.4f} ({args.dtype})"
        )
    print(f"errors: {errors}; unscored (first token not YES/NO): {unscored}/{len(out_reuse)}")


if __name__ == "__main__":
    asyncio.run(main())
