"""Files a person can open: reading inputs (JSONL, JSON, CSV or a Hub dataset id) and writing results that
survive a crash (append-only JSONL, atomic whole-file writes).

Errors name the file, the line and the field, because a bad record in row 3,817 of a user's file should take
seconds to find, not an afternoon.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from judges.files import atomic_file
from judges.models import ModelUnavailableError
from judges.settings import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two runs on one output are then the user's to avoid
    fcntl = None  # type: ignore[assignment]


class InputError(ValueError):
    """A record that cannot be used; the message says where it is and what is wrong."""

    def __init__(self, source: str, line: int | None, field: str | None, problem: str):
        where = source + (f", line {line}" if line is not None else "") + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")
        self.source, self.line, self.field, self.problem = source, line, field, problem


class OutputError(ValueError):
    """An output that cannot be written (a directory, no permission, another run holds it)."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


class UsageError(ValueError):
    """A command that cannot run as asked (flags that do not fit together, an optional dependency it needs is not
    installed, input it cannot use). Commands raise it; the `rrd` entry point reports it."""


#: what a command reports as a one-line `error:` (exit code 2) instead of a traceback: the one way a command
#: reports a user's error (it raises one of these; rrd.cli.main prints it)
USER_ERRORS = (InputError, OutputError, ModelUnavailableError, UsageError, ConfigError)


def _not_text(path: Path) -> InputError:
    """The error for a file that is not UTF-8, naming the first line that does not decode."""
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return InputError(str(path), i, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                                      f"{exc.start + 1}); is this a binary file?")
    return InputError(str(path), None, None, "not UTF-8 text")


@dataclass
class Row:
    """One input record and where it came from (line number in the file, or row index for Hub data)."""

    source: str
    line: int
    data: dict[str, Any]

    def get(self, *names: str, required: bool = True, kind: type | tuple[type, ...] = str) -> Any:
        """The first present field among `names`, type-checked; raises InputError naming file, line and field."""
        for name in names:
            if name in self.data and self.data[name] is not None:
                value = self.data[name]
                if not isinstance(value, kind):
                    raise InputError(self.source, self.line, name,
                                     f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
                return value
        if required:
            raise InputError(self.source, self.line, " or ".join(names), "missing")
        return None


def _is_local(source: str) -> bool:
    return os.path.exists(source) or source.removesuffix(".gz").endswith((".jsonl", ".json", ".csv", ".parquet"))


def _open(path: Path, mode: str = "rb", **kw: Any) -> Any:
    """A file, or its decompressed text when it ends in .gz (HH-RLHF and many exports ship gzipped)."""
    if path.suffix == ".gz":
        return gzip.open(path, mode if "b" in mode else mode + "t", **kw)
    return open(path, mode, **kw)


def read_rows(source: str, *, split: str = "train", limit: int | None = None) -> Iterator[Row]:
    """Rows of a .jsonl/.json/.csv/.parquet file (also gzipped, but for Parquet), or of a Hub dataset id (`split`)."""
    if _is_local(source):
        path = Path(source)
        if not path.exists():
            raise InputError(source, None, None, "file not found")
        if path.is_dir():
            raise InputError(source, None, None, "is a directory; give a file (.jsonl, .json, .csv or .parquet)")
        try:
            yield from _read_file(path, limit)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # a .gz that is not gzip, or is cut short
            raise InputError(source, None, None, f"not a readable gzip file: {exc}") from None
        return
    from datasets import load_dataset  # only for Hub ids: datasets is slow to import

    name, _, config = source.partition(":")
    ds = load_dataset(name, config or None, split=split)
    for i, record in enumerate(ds):
        if limit is not None and i >= limit:
            return
        yield Row(f"{source}[{split}]", i + 1, dict(record))


def require_records(items: list[T], source: str) -> list[T]:
    """`items`, or an InputError when the input held no record at all: an empty file is a mistake (a wrong path,
    a failed export), and a run over nothing that exits 0 hides it."""
    if not items:
        raise InputError(source, None, None, "no records: the input is empty")
    return items


def unique_ids(located: Sequence[tuple[T, str, int]], key: Callable[[T], str],
               rename: Callable[[T, str], T]) -> list[T]:
    """One record per id, from (record, source, line) in file order. A row that repeats an earlier one exactly
    (same id, same content) is dropped: scoring it again would count one item twice. A row that reuses an id
    with other content is kept as ID@LINE, so results stay keyed one to one and a re-run finds every item again
    (two items behind one id would overwrite each other's record on every run and never settle). Both are
    counted in one warning."""
    seen: dict[str, list[T]] = {}
    taken: set[str] = set()
    out: list[T] = []
    exact: list[int] = []
    renamed: list[str] = []
    source = located[0][1] if located else ""
    for record, _, line in located:
        k = key(record)
        if record in seen.get(k, []):
            exact.append(line)
            continue
        seen.setdefault(k, []).append(record)
        if k in taken:
            record = rename(record, f"{k}@{line}")
            renamed.append(f"{k}@{line}")
        taken.add(key(record))
        out.append(record)
    if exact:
        log.warning("%s: %d row(s) repeat an earlier row exactly and are used once (lines %s)", source,
                    len(exact), ", ".join(map(str, exact[:10])) + (" ..." if len(exact) > 10 else ""))
    if renamed:
        log.warning("%s: %d row(s) reuse an id with other content and are kept as %s", source, len(renamed),
                    ", ".join(renamed[:10]) + (" ..." if len(renamed) > 10 else ""))
    return out


def _read_file(path: Path, limit: int | None) -> Iterator[Row]:
    src = str(path)
    count = 0
    suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    if suffix == ".csv":
        with _open(path, "r", newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            try:
                for record in reader:
                    if limit is not None and count >= limit:
                        return
                    count += 1
                    yield Row(src, reader.line_num, dict(record))
            except UnicodeDecodeError:
                raise _not_text(path) from None
        return
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # a dependency of datasets

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises several types for a bad file
            raise InputError(src, None, None, f"not a readable Parquet file: {exc}") from None
        for i, record in enumerate(table.to_pylist()[:limit] if limit is not None else table.to_pylist()):
            yield Row(src, i + 1, record)  # "line" = row number
        return
    if suffix == ".json":
        try:
            with _open(path) as fh:
                data = json.loads(fh.read().decode("utf-8"))
        except UnicodeDecodeError:
            raise _not_text(path) from None
        except json.JSONDecodeError as exc:
            raise InputError(src, exc.lineno, None, f"invalid JSON: {exc.msg}") from exc
        if not isinstance(data, list):
            raise InputError(src, None, None, "expected a JSON list of records")
        for i, record in enumerate(data[:limit] if limit is not None else data):
            if not isinstance(record, dict):
                raise InputError(src, None, f"[{i}]", "record is not an object")
            yield Row(src, i + 1, record)
        return
    with _open(path) as fh:  # bytes, so an undecodable line is reported with its number
        for i, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_text(path) from None
            if not line.strip():
                continue
            if limit is not None and count >= limit:
                return
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(src, i, None, f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
            if not isinstance(record, dict):
                raise InputError(src, i, None, "record is not a JSON object")
            count += 1
            yield Row(src, i, record)


class JsonlAppender:
    """Append-only JSONL results: each record is flushed and fsynced as it arrives, so a crash loses at most the
    record being written. On open, a torn last line (from a crash mid-write) is cut off, and the complete records
    already there are available for resuming (a damaged line elsewhere is skipped and reported, never a reason
    to drop the records after it).

    The file is locked (flock) while open: a second run on the same output fails at once with OutputError instead
    of interleaving a second copy of every record. An output that cannot be written fails the same way, before
    any work is done."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(self.path, "is a directory; give a file path such as results.jsonl")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(self.path, f"cannot write here: {exc.strerror or exc}") from None
        try:
            self._lock()
            self.existing: list[dict[str, Any]] = self._load_and_repair()
        except BaseException:
            self._fh.close()
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(self.path, "another run is writing to this file; wait for it to finish or give "
                                         "another --out") from None

    def _load_and_repair(self) -> list[dict[str, Any]]:
        """The records already in the file. A torn last line (a crash mid-write: no final newline) is cut off; a
        bad line before the end is corruption, not a crash, so it stays where it is, is skipped and reported, and
        the valid records after it are kept (their calls are not sent again)."""
        if not self.path.exists():
            return []
        records, bad, good_bytes, torn = _scan_jsonl(self.path)
        for line, why in bad:
            log.warning("%s, line %d: %s; skipped (the line is left in the file)", self.path, line, why)
        if torn:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_bytes)
        elif good_bytes:
            with open(self.path, "r+b") as fh:  # a last record typed without a newline gets one
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
        return records

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scan_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]], int, bool]:
    """(records, bad lines as (line, why), bytes up to the end of the last good line, whether the file ends in a
    torn write). Only a last line with no newline is torn: every record is written with its newline in one
    write, so a bad line that ends in one was damaged after it was written."""
    records: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    good_bytes = 0
    torn = False
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            if not raw.strip():
                good_bytes += len(raw)
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
                if not raw.endswith(b"\n"):
                    torn = True
                    break
                bad.append((i, f"not a JSON record ({exc})"[:200]))
                good_bytes += len(raw)
                continue
            if not isinstance(record, dict):
                bad.append((i, "not a JSON object"))
            else:
                records.append(record)
            good_bytes += len(raw)
    return records, bad, good_bytes, torn


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a results file written by JsonlAppender (none when it does not exist), for summaries and
    reports: a torn last line is ignored, a damaged line elsewhere is skipped with a warning naming it."""
    path = Path(path)
    if not path.exists():
        return []
    records, bad, _, _ = _scan_jsonl(path)
    for line, why in bad:
        log.warning("%s, line %d: %s; skipped", path, line, why)
    return records


def latest_by(records: Iterable[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    """The last record for each value of `key`, in first-seen order: an append-only file redoes an item by
    appending its new record, so the last one is the item's current state and summaries count each item once."""
    latest: dict[Any, dict[str, Any]] = {}
    for r in records:
        latest[r.get(key)] = r
    return latest


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file so readers see the old or the new version, never half of one."""
    with atomic_file(path) as fh:
        fh.write(text)
