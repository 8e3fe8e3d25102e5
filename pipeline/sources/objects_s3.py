"""S3 Inventory reports (``s3-inventory``): header-less CSV (usually gzip) whose columns are named by
the ``fileSchema`` of the inventory's manifest.json.

S3 writes ``<dest>/<bucket>/<config>/<date>/manifest.json`` and the data files under
``<dest>/<bucket>/<config>/data/<uuid>.csv.gz``. The manifest is looked for next to the data file and
one and two folders up, in each of those folders and in their subfolders; a manifest that lists the
data file wins, then the closest one.

Keys are URL-encoded (``+`` is a space). Versioned inventories: every version row is kept, because a
non-current version is still stored and can still be served. ``status`` is ``deleted`` for a delete
marker (no size), ``noncurrent`` for an older version, ``enabled`` otherwise.
"""

from __future__ import annotations

import json
import posixpath
from urllib.parse import unquote_plus

import fsspec
import numpy as np
import pandas as pd

from ..errors import Location, SourceError
from .base import OBJECT_FORMATS, ReadResult, open_bytes
from .objects import (
    FIRST,
    LAST,
    LINE,
    RowReasons,
    check_key,
    ensure_columns,
    fill_given,
    finish,
    parse_int,
    parse_iso_time,
    read_delimited,
    split_lines,
    text_raw,
)

FIELDS: dict[str, str] = {
    "Bucket": "bucket", "Key": "key", "Size": "size", "LastModifiedDate": "put_time", "ETag": "etag",
    "StorageClass": "storage_class", "ObjectOwner": "uploader",
}
_HINT = "keep the inventory's manifest.json in its dated folder, as S3 writes it, or pass manifest="


def _load_manifest(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, object]:
    try:
        with fs.open(path, "rb") as fh:
            manifest = json.loads(fh.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"manifest is not valid JSON: {exc}", location=Location(path), hint=_HINT) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("fileSchema"), str):
        raise SourceError("manifest has no fileSchema", location=Location(path), hint=_HINT)
    fmt = str(manifest.get("fileFormat", "CSV"))
    if fmt.upper() != "CSV":
        raise SourceError(f"inventory format is {fmt}, not CSV", location=Location(path),
                          hint="configure the S3 inventory with CSV output")
    return manifest


def _lists(manifest: dict[str, object], name: str) -> bool:
    files = manifest.get("files")
    return isinstance(files, list) and any(
        isinstance(f, dict) and posixpath.basename(str(f.get("key", ""))) == name for f in files)


def find_manifest(path: str) -> tuple[str, list[str]]:
    """The manifest that describes data file ``path``: (manifest path, column names)."""
    fs, local = fsspec.core.url_to_fs(path)
    name = posixpath.basename(local)
    folder = posixpath.dirname(local)
    direct: list[str] = []
    nearby: list[str] = []
    for _level in range(3):
        own = posixpath.join(folder, "manifest.json")
        if fs.isfile(own):
            direct.append(own)
        # Dated folders sort by date: the newest comes first.
        nearby.extend(sorted(fs.glob(posixpath.join(folder, "*", "manifest.json")), reverse=True))
        folder = posixpath.dirname(folder)
    found = list(dict.fromkeys(direct + nearby))
    if not found:
        raise SourceError(f"no manifest.json found for {path} (looked next to it and up to two folders up)",
                          location=Location(path), hint=_HINT)
    manifests = {m: _load_manifest(fs, m) for m in found}
    listing = [m for m in found if _lists(manifests[m], name)]
    if listing:
        chosen = listing[0]
    elif direct:
        chosen = direct[0]
    elif len({str(manifests[m]["fileSchema"]) for m in found}) == 1:
        chosen = found[0]
    else:
        raise SourceError(f"several manifests near {path} disagree on fileSchema and none lists the file",
                          location=Location(path), hint=_HINT)
    return chosen, _schema(str(manifests[chosen]["fileSchema"]))


def _schema(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _decode_keys(col: pd.Series, reasons: RowReasons) -> pd.Series:
    """URL-decoded keys; a key whose escapes do not decode to UTF-8 flags the row."""
    values = col.to_numpy(dtype=object)
    encoded = col.str.contains(r"[%+]", regex=True).fillna(False).to_numpy(dtype=bool)
    problems: dict[int, str] = {}
    for pos in np.flatnonzero(encoded):
        try:
            values[pos] = unquote_plus(values[pos], errors="strict")
        except UnicodeDecodeError as exc:
            problems[int(pos)] = f"Key is not URL-encoded UTF-8: {exc.reason} in {col.iloc[pos]!r}"
    mask = np.zeros(len(col), dtype=bool)
    mask[list(problems)] = True
    reasons.flag(mask, problems.__getitem__)
    return pd.Series(values, index=col.index, dtype="string")


def _flag(col: pd.Series, reasons: RowReasons, name: str) -> np.ndarray:
    """A true/false column as booleans (missing is false); anything else flags the row."""
    text = col.astype("string").str.strip().str.lower()
    values = col.to_numpy(dtype=object)
    reasons.flag((text.notna() & ~text.isin(["true", "false"])).to_numpy(dtype=bool),
                 lambda pos: f"{name} is not true or false: {values[pos]!r}")
    return (text == "true").fillna(False).to_numpy(dtype=bool)


@OBJECT_FORMATS.register("s3-inventory")
def read_s3_inventory(path: str, *, bucket: str | None = None, account_id: str | None = None,
                      manifest: str | None = None) -> ReadResult:
    """One inventory data file; ``manifest`` overrides the manifest lookup."""
    if manifest is not None:
        fs, local = fsspec.core.url_to_fs(manifest)
        where, names = manifest, _schema(str(_load_manifest(fs, local)["fileSchema"]))
    else:
        where, names = find_manifest(path)
    if "Key" not in names:
        raise SourceError(f"manifest fileSchema has no Key column ({', '.join(names)})",
                          location=Location(where), hint=_HINT)
    lines = split_lines(open_bytes(path))
    rows = read_delimited(lines, path, names=names, first=0)
    frame = rows.frame.copy()
    reasons = RowReasons(len(frame))
    out = frame[[c for c in FIELDS if c in frame.columns] + [LINE, FIRST, LAST]].rename(columns=FIELDS)
    out = ensure_columns(out, list(FIELDS.values()))
    check_key(out, reasons, "Key")
    key = _decode_keys(out["key"], reasons)
    deleted = _flag(frame["IsDeleteMarker"], reasons, "IsDeleteMarker") if "IsDeleteMarker" in frame else \
        np.zeros(len(frame), dtype=bool)
    latest = _flag(frame["IsLatest"], reasons, "IsLatest") if "IsLatest" in frame else np.ones(len(frame), dtype=bool)
    if "IsLatest" in frame:
        latest |= frame["IsLatest"].isna().to_numpy()  # an empty IsLatest is an unversioned object
    status = np.where(deleted, "deleted", np.where(latest, "enabled", "noncurrent"))
    typed = out.assign(
        key=key,
        size=parse_int(out["size"], reasons, "Size"),
        put_time=parse_iso_time(out["put_time"], reasons, "LastModifiedDate"),
        status=pd.Series(status, index=out.index, dtype="string"),
        bucket=fill_given(out["bucket"], len(out), bucket),
        account_id=fill_given(None, len(out), account_id),
    )
    return finish(typed, reasons, path=path, raw_of=text_raw(lines, frame), bad=rows.bad)
