"""What every source adapter returns, the per-kind format registries, and path expansion.

An adapter is a function ``read(path: str) -> ReadResult`` registered under its format name
in the registry of its source kind. It reads one file (local path or fsspec URL; gzip is
opened transparently), maps every row onto the canonical record (``pipeline.records``) or
quarantines it, and never loses a row: ``rows_read == len(records) + len(quarantine)``.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import glob
import gzip
import mmap
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pandas as pd

from ..errors import SourceError
from ..records import QUARANTINE, conform, empty
from ..registry import Registry


@dataclass
class ReadResult:
    records: pd.DataFrame      # canonical columns (pipeline.records) incl. source_file, source_line
    quarantine: pd.DataFrame   # columns of pipeline.records.QUARANTINE
    rows_read: int             # data rows seen in the file (headers and comments not counted)

    def __post_init__(self) -> None:
        if self.rows_read != len(self.records) + len(self.quarantine):
            raise AssertionError(
                f"row accounting broken: read {self.rows_read}, parsed {len(self.records)}, "
                f"quarantined {len(self.quarantine)}"
            )


Reader = Callable[[str], ReadResult]

OBJECT_FORMATS: Registry[Reader] = Registry("objects format")
LOG_FORMATS: Registry[Reader] = Registry("log format")
STREAM_FORMATS: Registry[Reader] = Registry("streams format")

REGISTRIES: dict[str, Registry[Reader]] = {
    "objects": OBJECT_FORMATS,
    "logs": LOG_FORMATS,
    "streams": STREAM_FORMATS,
}


def quarantine_frame(rows: list[tuple[str, int, str, bytes]]) -> pd.DataFrame:
    """Build a quarantine frame from ``(source_file, source_line, reason, raw_bytes)`` tuples."""
    if not rows:
        return empty(QUARANTINE)
    df = pd.DataFrame(rows, columns=list(QUARANTINE))
    return conform(df, QUARANTINE)


Stored = bytes | mmap.mmap  # a file's bytes as stored: read into memory, or mapped when local


QUIET_SECONDS = 300  # a file unchanged this long is taken to be rotated, not live


class UnreadableFile(SourceError):
    """One source file cannot be read (permission denied, vanished, corrupt compression). A scan
    or an ingest quarantines the file and goes on, unless run with ``--strict``."""

    def __init__(self, path: str, reason: str, *, size: int = -1, hint: str | None = None):
        super().__init__(f"{path}: {reason}", hint=hint)
        self.path = path
        self.reason = reason
        self.size = size

    def __reduce__(self) -> tuple[object, ...]:
        # raised on a worker, returned to the scanning process: rebuilt from its own arguments
        return (type(self), (self.path, self.reason), dict(self.__dict__))


@dataclass(frozen=True)
class FileTrouble:
    """A file quarantined whole, or its unreadable tail: what a run reports and retries next time."""

    path: str
    reason: str
    bytes: int          # the file's size as stored (-1 when unknown)
    partial: bool = False  # the lines before the trouble were read

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "reason": self.reason, "bytes": self.bytes, "partial": self.partial}


_TROUBLES: contextvars.ContextVar[list[FileTrouble] | None] = contextvars.ContextVar("file_troubles", default=None)
_ENCODING: contextvars.ContextVar[str] = contextvars.ContextVar("source_encoding", default="utf-8")
_BLANKS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("blank_lines", default=None)
BLANK_LINE = "blank line"   # the quarantine reason of a blank log line (pipeline.sources.logs_common)


@contextlib.contextmanager
def counting_blank_lines() -> Iterator[list[int]]:
    """While active, object readers add the empty lines they skip (not rows) to the one-element list:
    with the logs' quarantined blank lines, every format's blank lines show in one figure."""
    found = [0]
    token = _BLANKS.set(found)
    try:
        yield found
    finally:
        _BLANKS.reset(token)


def note_blank_lines(n: int) -> None:
    counter = _BLANKS.get()
    if counter is not None:
        counter[0] += n

ENCODINGS = ("utf-8", "gb18030", "gbk", "utf-16", "auto")
ENCODING_HINT = "set `encoding:` in its source entry (utf-8, gb18030, gbk, utf-16 or auto)"


@contextlib.contextmanager
def collecting_troubles() -> Iterator[list[FileTrouble]]:
    """While active, a truncated compressed file yields its readable lines and its tail is noted
    here instead of raising; the caller decides (quarantine the tail, or stop under --strict)."""
    found: list[FileTrouble] = []
    token = _TROUBLES.set(found)
    try:
        yield found
    finally:
        _TROUBLES.reset(token)


@contextlib.contextmanager
def reading_encoding(encoding: str | None) -> Iterator[None]:
    """While active, every file opened through this module is decoded from ``encoding`` (see
    ``decode_text``): one place for every reader of objects, logs, ICP data and streams."""
    token = _ENCODING.set((encoding or "utf-8").lower())
    try:
        yield
    finally:
        _ENCODING.reset(token)


def current_encoding() -> str:
    return _ENCODING.get()


def os_trouble(path: str, exc: OSError) -> UnreadableFile:
    if isinstance(exc, FileNotFoundError):
        return UnreadableFile(path, "no such file (it vanished, or the path is wrong)",
                              hint="check the path in the config or on the command line")
    if isinstance(exc, PermissionError):
        return UnreadableFile(path, "permission denied",
                              hint=f"let this user read it (e.g. chmod o+r {path}) or remove it from the source")
    if isinstance(exc, IsADirectoryError):
        return UnreadableFile(path, "is a folder, not a file", hint="name the files, or the folder itself")
    return UnreadableFile(path, f"cannot be read: {exc.strerror or exc}", hint="check the disk and the file")


def missing_filesystem(path: str, exc: BaseException) -> SourceError:
    """An fsspec URL whose filesystem package is not installed: which one, and the extra to install."""
    protocol = path.split("://", 1)[0]
    extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure"}.get(protocol)
    install = f'pip install -e ".[{extra}]"' if extra else "install the fsspec filesystem package for it"
    return SourceError(f"{path}: cannot open {protocol}:// URLs: {exc}", hint=install)


def read_stored(path: str) -> Stored:
    """A file's bytes as stored (local or fsspec URL), still compressed if it is gzip.

    For callers that need the stored bytes themselves (a content hash) and then their text:
    ``gunzip(path, read_stored(path))`` equals ``open_bytes(path)`` with one read of the file.
    A local file left alone for a while is mapped read-only rather than copied: its pages come
    from the page cache without a copy or a fresh allocation per page. A file modified in the last
    ``QUIET_SECONDS`` may still be written or rotated in place (copytruncate), and a mapped file
    that shrinks kills the reader with SIGBUS, so such a file is copied instead.
    """
    local = path[len("file://"):] if path.startswith("file://") else path
    if "://" not in local:
        try:
            with open(local, "rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_size == 0:
                    return b""
                if time.time() - st.st_mtime < QUIET_SECONDS:
                    return fh.read()
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise os_trouble(path, exc) from None
    return _read_all(path)


def _read_all(path: str) -> bytes:
    try:
        with fsspec.open(path, "rb") as fh:
            return fh.read()
    except (ImportError, ValueError) as exc:   # fsspec: "Install s3fs to access S3", unknown protocol
        if "://" in path and not path.startswith("file://"):
            raise missing_filesystem(path, exc) from None
        raise
    except OSError as exc:
        raise os_trouble(path, exc) from None


def _gunzip_partial(data: Stored) -> tuple[bytes, str]:
    """What can be decompressed of a broken gzip stream, cut at its last whole line, and why it stopped."""
    out: list[bytes] = []
    view = memoryview(data)
    at = 0
    why = "the compressed stream ends early (truncated)"
    while at < len(view):
        d = zlib.decompressobj(wbits=31)
        try:
            while at < len(view) and not d.eof:
                chunk = view[at:at + (1 << 16)]
                out.append(d.decompress(chunk))
                at += len(chunk) - len(d.unused_data)
        except zlib.error as exc:
            why = f"the compressed stream is corrupt ({exc})"
            break
        if not d.eof:
            break
        out.append(d.flush())
        rest = bytes(view[at:at + 2])
        if rest != b"\x1f\x8b":
            why = ""
            break
    text = b"".join(out)
    if why:
        cut = text.rfind(b"\n") + 1
        text = text[:cut]
    return text, why


def gunzip(path: str, data: Stored) -> Stored:
    """``data`` (the stored bytes of ``path``) decompressed when it is gzip, whatever the file's name,
    then decoded from the source's ``encoding`` into UTF-8 (see ``reading_encoding``).

    A truncated or corrupt gzip stream raises UnreadableFile naming the file; inside
    ``collecting_troubles()`` it yields its whole lines instead and notes the tail there.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            troubles = _TROUBLES.get()
            if troubles is None:
                raise UnreadableFile(path, f"gzip stream is corrupt or truncated ({exc})", size=len(data),
                                     hint="re-fetch the file; nothing from it was used") from None
            readable, why = _gunzip_partial(data)
            if why:
                lines = readable.count(b"\n")
                troubles.append(FileTrouble(
                    path, f"{why}: the {lines} whole line(s) before it were read, the rest "
                    "was not", len(data), partial=True))
            data = readable
    return decode_text(data, path)


def decode_text(data: Stored, path: str = "", encoding: str | None = None) -> Stored:
    """A file's bytes in UTF-8, from ``encoding`` (default: the source's, see ``reading_encoding``).

    utf-8: as they are (a UTF-8 BOM is dropped by the readers). gb18030 / gbk: transcoded; bytes
    that do not decode are kept as they were, so their lines are quarantined one by one as not
    UTF-8. utf-16: by its BOM (little-endian without one). auto: a BOM decides; else UTF-8 when
    the file is UTF-8, else gb18030 (a superset of GBK).
    """
    enc = (encoding or _ENCODING.get()).lower()
    if enc in ("utf-8", "utf8") or not len(data):
        return data
    raw = bytes(data)
    if enc == "auto":
        if raw.startswith(codecs.BOM_UTF8):
            return raw
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            enc = "utf-16"
        else:
            try:
                raw.decode("utf-8")
                return raw
            except UnicodeDecodeError:
                enc = "gb18030"
    if enc in ("utf-16", "utf16", "utf-16le", "utf-16be"):
        if enc == "utf-16" and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            enc = "utf-16-le"
        text = raw.decode(enc, "replace")
        if text.startswith("\ufeff"):
            text = text[1:]
        return text.encode("utf-8")
    try:
        return raw.decode(enc, "surrogateescape").encode("utf-8", "surrogateescape")
    except LookupError:
        raise SourceError(f"{path}: unknown encoding {enc!r}", hint=f"valid encodings: {', '.join(ENCODINGS)}") from None


def undecodable_suffix(encoding: str) -> str:
    """What a reason for bytes that are not text adds: the encoding tried and the setting to change."""
    tried = "utf-8" if encoding in ("utf-8", "utf8") else ("a BOM, utf-8, then gb18030" if encoding == "auto"
                                                           else encoding)
    return f" (decoded as {tried}; {ENCODING_HINT})"


def explain_undecodable(quarantine: pd.DataFrame, encoding: str) -> pd.DataFrame:
    """Quarantine reasons for bytes that are not text name the encoding tried and the setting to change."""
    if not len(quarantine):
        return quarantine
    reasons = quarantine["reason"].astype(str)
    bad = reasons.str.startswith("invalid UTF-8")
    if not bad.any():
        return quarantine
    suffix = undecodable_suffix(encoding)
    quarantine = quarantine.copy()
    quarantine.loc[bad, "reason"] = reasons[bad] + suffix
    return conform(quarantine, QUARANTINE)


_BOMS = ((b"\xff\xfe", "UTF-16 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)"))


def utf16_advice(head: bytes) -> str | None:
    """What to set when bytes read as UTF-8 start with a UTF-16 byte-order mark (None otherwise)."""
    found = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if found is None:
        return None
    return f"it starts with a {found} byte-order mark: set `encoding: utf-16` (or auto) in its source entry"


def wrong_encoding(path: str, encoding: str, quarantine: pd.DataFrame, rows_read: int) -> FileTrouble | None:
    """The file-level quarantine of a file read in the wrong encoding: no line of it decodes, or
    every line is quarantined and it starts with a UTF-16 byte-order mark (UTF-16 text read as
    UTF-8 decodes, NULs and all, and only fails to parse). Names the encoding tried and what to set."""
    if rows_read == 0 or len(quarantine) != rows_read:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        head = b""
    advice = utf16_advice(head) if encoding not in ("utf-16", "auto") else None
    if advice is None and not undecodable_throughout(quarantine, rows_read):
        return None
    advice = advice or "set `encoding:` in its source entry, e.g. gb18030 or auto"
    return FileTrouble(path, f"no line decodes as {encoding}: every line was quarantined ({advice})", -1)


def undecodable_throughout(quarantine: pd.DataFrame, rows_read: int) -> bool:
    """Every data line of a file failed to decode: most likely the wrong encoding for the whole file."""
    if rows_read == 0 or len(quarantine) != rows_read:
        return False
    return bool(quarantine["reason"].astype(str).str.startswith("invalid UTF-8").all())


def open_bytes(path: str) -> bytes:
    """Read a whole file (local or fsspec URL); gunzip it when it is gzip, whatever its name.

    Inside ``reading_part(part)`` for this path, the part's bytes instead (see ``FilePart``).
    A truncated gzip stream raises UnreadableFile naming the file.
    """
    part = _READING.get()
    if part is not None and part.path == path:
        return part.read()
    data = gunzip(path, _read_all(path))
    assert isinstance(data, bytes)
    return data


# -- files read in parts ------------------------------------------------------------------------

@dataclass(frozen=True)
class FilePart:
    """Lines ``start:end`` (bytes, cut at line ends) of a local, uncompressed, line-oriented file,
    read by a task of its own so that a worker holds one part, not the whole file, in memory.

    A reader reads a part as if it were the file: ``open_bytes`` hands it the part's bytes,
    after the file's ``header`` line (CSV column names) for every part but the first. Its line
    numbers are then shifted by ``line_shift`` to the file's own (``shift_lines``).
    """

    path: str
    start: int
    end: int
    first_line: int        # the file's line number of the part's first line (1-based)
    header: bytes          # b"" for formats without a header, and for the first part
    index: int
    count: int

    @property
    def last(self) -> bool:
        return self.index == self.count - 1

    @property
    def line_shift(self) -> int:
        """What to add to a line number counted in what the reader was handed."""
        return self.first_line - 1 - (1 if self.header else 0)

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.start)
                data = fh.read(self.end - self.start)
        except OSError as exc:
            raise os_trouble(self.path, exc) from None
        return self.header + b"\n" + data if self.header else data


_READING: contextvars.ContextVar[FilePart | None] = contextvars.ContextVar("reading_part", default=None)


@contextlib.contextmanager
def reading_part(part: FilePart) -> Iterator[None]:
    """While active, ``open_bytes(part.path)`` returns the part's bytes."""
    token = _READING.set(part)
    try:
        yield
    finally:
        _READING.reset(token)


def plan_parts(path: str, part_bytes: int, *, header: bool) -> list[FilePart]:
    """``path`` cut into parts of about ``part_bytes`` at line ends, each with the number of its
    first line; none when it is read whole: small, not local, or gzip (which cannot be read from
    the middle). ``header``: the first non-blank line names the columns, and every part gets it.

    Counting the lines before each cut reads the file once, on the machine that plans the scan.
    """
    local = path[len("file://"):] if path.startswith("file://") else path
    if "://" in local or not os.path.isfile(local) or not os.access(local, os.R_OK):
        return []   # read whole by its task, which reports a file it cannot read
    size = os.path.getsize(local)
    with open(local, "rb") as fh:
        magic = fh.read(2)
    if size <= part_bytes or magic == b"\x1f\x8b":
        return []
    with open(local, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        head = b""
        if header:
            at = 0
            while at < size:
                nl = mm.find(b"\n", at)
                line = mm[at:nl if nl >= 0 else size].rstrip(b"\r")
                if line.strip():
                    head = line
                    break
                at = size if nl < 0 else nl + 1
        n = -(-size // part_bytes)
        cuts = [0]
        for k in range(1, n):
            nl = mm.find(b"\n", max(k * size // n, cuts[-1]))
            if nl < 0 or nl + 1 >= size:
                break
            if nl + 1 > cuts[-1]:
                cuts.append(nl + 1)
        cuts.append(size)
        first = [1]
        for a, b in zip(cuts[:-2], cuts[1:-1]):
            first.append(first[-1] + _count_newlines(mm, a, b))
    count = len(cuts) - 1
    if count < 2:
        return []
    return [FilePart(path, cuts[i], cuts[i + 1], first[i], head if i else b"", i, count) for i in range(count)]


# Bytes compared at a time when looking for a byte: the comparison's mask stays in the cache and
# costs no fresh pages (one mask the size of a 200 MB file took longer than the search itself).
_COUNT_CHUNK = 1 << 20


def _count_newlines(mm: mmap.mmap, start: int, end: int) -> int:
    """The b"\\n" in ``mm[start:end]``, counted in place, a chunk at a time: slicing a part out of
    the map first copied it (0.46 s for 130 MB, against 0.05 s)."""
    view = np.frombuffer(mm, dtype=np.uint8)
    try:
        return len(byte_positions(view[start:end], 10))
    finally:
        del view   # the map cannot close while an array still points into it


def byte_positions(buf: np.ndarray, byte: int) -> np.ndarray:
    """The positions (int64) of ``byte`` in ``buf`` (uint8), found a chunk at a time."""
    found = [np.flatnonzero(buf[at:at + _COUNT_CHUNK] == byte) + at for at in range(0, len(buf), _COUNT_CHUNK)]
    return np.concatenate(found).astype(np.int64, copy=False) if found else np.zeros(0, dtype=np.int64)


_AT_LINE = re.compile(r"\bat line (\d+)")
# What a reader says of a quoted field still open where its input ends (pipeline.sources.objects)
ENDS_INSIDE_QUOTES = "unterminated quoted field (the file ends inside it)"


def cut_inside_a_field(result: ReadResult, part: FilePart) -> bool:
    """Whether a part other than the last ended inside a quoted field (a CSV value spanning lines
    may have been cut): its file is then to be read whole, or lines would be paired otherwise
    than in one reading. Absent that, the parts read exactly as the whole file does."""
    return not part.last and bool(len(result.quarantine)) and bool(
        result.quarantine["reason"].astype(str).str.startswith(ENDS_INSIDE_QUOTES).any())


def shift_lines(result: ReadResult, part: FilePart) -> ReadResult:
    """A part's ReadResult with line numbers (and those quoted in reasons) as the file's own."""
    shift = part.line_shift
    if not shift:
        return result
    records = result.records.assign(source_line=result.records["source_line"] + shift)
    quarantine = result.quarantine
    if len(quarantine):
        quarantine = quarantine.assign(
            source_line=quarantine["source_line"] + shift,
            reason=[_AT_LINE.sub(lambda m: f"at line {int(m.group(1)) + shift}", str(r)) for r in quarantine["reason"]])
        quarantine = conform(quarantine, QUARANTINE)
    return ReadResult(records=records, quarantine=quarantine, rows_read=result.rows_read)


def expand(path: str) -> list[str]:
    """A source path (file, folder or glob; local or fsspec URL) → the sorted list of files it names."""
    if "://" in path and not path.startswith("file://"):
        try:
            fs, _, paths = fsspec.get_fs_token_paths(path)
        except (ImportError, ValueError) as exc:   # "Install s3fs to access S3", "Protocol not known"
            raise missing_filesystem(path, exc) from None
        files: list[str] = []
        for p in paths:
            try:
                if fs.isdir(p):
                    files.extend(f for f in fs.find(p))
                else:
                    files.append(p)
            except PermissionError:
                raise SourceError(f"permission denied: {path}", hint="check the credentials for this URL") from None
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return sorted(f"{protocol}://{f}" if "://" not in f else f for f in files)
    local = path[len("file://"):] if path.startswith("file://") else path
    if any(ch in local for ch in "*?["):
        found = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
    elif os.path.isdir(local):
        found = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(local)
            for name in names
            if not name.startswith(".")
        )
    elif os.path.isfile(local):
        found = [local]
    else:
        raise SourceError(f"no such file or folder: {path}", hint="check the path in the config or on the command line")
    return found
