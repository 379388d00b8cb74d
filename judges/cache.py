"""Content-addressed on-disk cache of completions, shared by every command.

SQLite in WAL mode: many readers and one writer at a time across processes, and a crash mid-write leaves the
database consistent (a transaction either landed or did not). The key hashes everything that determines the
answer — model, sampling parameters, template version and the exact messages — so a hit is always safe to reuse.
Only successful completions are stored: a failure is retried next time rather than remembered, and so is an
answer the Judge could not read as a verdict (Judge.run's `storable`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from .types import Completion, Request


def default_cache_path() -> Path:
    root = os.environ.get("RRD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "rrd")
    return Path(root) / "judge-cache.sqlite"


def cache_key(model: str, request: Request) -> str:
    payload = {
        "model": model,
        "params": request.params.to_dict(),
        "template": request.template_version,
        "messages": request.messages,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_BUSY_TIMEOUT_S = 60.0


def _when_unlocked(statement: Callable[[], object]) -> None:
    """Run `statement`, retrying while the database is locked. SQLite's busy timeout does not cover every lock:
    switching to WAL, or two connections that both read and then want to write (as the processes of a distributed
    run do when they open one cache together), get SQLITE_BUSY at once, to avoid a deadlock."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class CompletionCache:
    """Thread-safe: one connection per thread. Pass `None` as path for a throwaway in-memory cache."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = str(path) if path is not None else ":memory:"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._memory_conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        with self._lock:
            conn = self._conn()
            _when_unlocked(lambda: conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, value TEXT NOT NULL,"
                " created REAL DEFAULT (julianday('now')))"
            ))
            conn.commit()

    def _conn(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._memory_conn is None:
                self._memory_conn = sqlite3.connect(":memory:", check_same_thread=False)
            return self._memory_conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
            _when_unlocked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, model: str, request: Request) -> Completion | None:
        return self.get_many([(model, request)])[0]

    def get_many(self, lookups: Sequence[tuple[str, Request]]) -> list[Completion | None]:
        """The stored completion of each (model, request), or None: one query for a whole batch (a remote
        cache makes it one round trip, rrd.cluster)."""
        keys = [cache_key(model, request) for model, request in lookups]
        found: dict[str, str] = {}
        with self._lock:
            conn = self._conn()
            for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters is 999 on old builds
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(conn.execute(f"SELECT key, value FROM completions WHERE key IN ({marks})", chunk))
        out: list[Completion | None] = []
        for key in keys:
            if key not in found:
                out.append(None)
                continue
            completion = Completion.from_dict(json.loads(found[key]))
            completion.cached = True
            out.append(completion)
        return out

    def put(self, model: str, request: Request, completion: Completion) -> None:
        self.put_many(model, [(request, completion)])

    def put_many(self, model: str, items: Sequence[tuple[Request, Completion]]) -> None:
        """Store successful completions in one transaction (one commit per batch, not per row: a 1,280-call
        GRPO step spends a fraction of the time writing). Failures are never cached."""
        rows = []
        for request, completion in items:
            if completion.ok:
                value = completion.to_dict()
                value["cached"] = False
                rows.append((cache_key(model, request), model, json.dumps(value, ensure_ascii=False)))
        if not rows:
            return
        with self._lock:
            conn = self._conn()
            conn.executemany("INSERT OR REPLACE INTO completions (key, model, value) VALUES (?, ?, ?)", rows)
            conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM completions").fetchone()[0])
