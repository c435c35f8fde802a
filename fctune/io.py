"""File helpers: atomic writes, JSON lines with line-numbered errors, append-as-you-go logs, hashes."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fctune.errors import UserError


class DataFileError(UserError, ValueError):
    """A data file could not be read; the message names the file and line."""


def _open_text(path: Path, mode: str):
    if str(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_jsonl(path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for each non-empty line; a bad line raises DataFileError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, not a JSONL file")
    # bytes, decoded line by line: a bad byte is then an error that names its line, not a bare UnicodeDecodeError
    with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as f:
        try:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                yield lineno, _json_line(raw, path, lineno)
        except (OSError, EOFError) as e:  # a corrupt .gz
            raise DataFileError(f"{path}: cannot be read ({e})") from None


def _json_line(raw: bytes, path: Path, lineno: int) -> Any:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})") \
            from None
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise DataFileError(f"{path}:{lineno}: JSON nested too deeply to read") from None


def read_jsonl(path) -> list[Any]:
    return [row for _, row in iter_jsonl(path)]


def read_jsonl_tolerant(path) -> tuple[list[Any], int]:
    """Read a JSONL file written incrementally; a torn last line (a killed writer) is dropped and counted."""
    path = Path(path)
    rows, torn = [], 0
    if not path.exists():
        return rows, 0
    with _open_text(path, "r") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError):
                torn += 1
    return rows, torn


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _atomic_target(path) -> tuple[Path, int, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; outputs are ordinary files
    return path, fd, tmp


def write_text_atomic(path, text: str) -> None:
    path, fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl_atomic(path, rows: Iterable[Any]) -> None:
    path = Path(path)
    if path.suffix == ".gz":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        os.replace(tmp, path)
        return
    write_text_atomic(
        path, "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows)
    )


class JsonlAppender:
    """Append one JSON line per record and flush it to disk at once, so a killed run loses nothing written."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._f = open(self.path, "a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        # A writer killed mid-line leaves a partial last line; cut it so appends start on a fresh line.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as f:
            f.truncate(cut)

    def write(self, row: Any) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def require_folder_or_absent(path, flag: str = "--out") -> Path:
    """An output folder given by the user: a file in its place is an error naming the flag, not a traceback later."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataFileError(f"{flag} {path}: is a file; give a folder")
    return path


def read_json(path) -> Any:
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, not a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    except RecursionError:
        raise DataFileError(f"{path}: JSON nested too deeply to read") from None


def sha256_file(path, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]




def sha256_json(obj: Any, length: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _json_default(o: Any):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


class FolderBusy(UserError, RuntimeError):
    """Another process is writing the same outputs."""


class OutputLock:
    """Held while a run writes ``name`` into ``folder``: a second run with the same outputs refuses with one line
    instead of moving the first one's rows aside or compacting its file under it. An OS lock (``flock``) on
    ``folder/.name.lock``: released when the holder exits however it exits, so a killed run never leaves it held."""

    def __init__(self, folder, name: str, what: str = "run"):
        self.path = Path(folder) / f".{name}.lock"
        self.what, self.fd = what, None

    def __enter__(self) -> OutputLock:
        import fcntl
        import sys
        import time

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise FolderBusy(f"{self.path.parent}: another {self.what} is writing these outputs ({holder}); wait "
                             "for it to end, or give this one another label or folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}, "
                      f"{os.path.basename(sys.argv[0]) or 'python'}".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock; the file stays (removing it would race a new holder)
            self.fd = None
