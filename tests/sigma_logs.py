"""Access-log lines built from Sigma rules themselves, for the differential test against pySigma.

For each rule: lines that satisfy each selection (every alternative of a value list, every map of a
list of maps), all selections together, those plus each negated selection (filter hits), near
misses (one value with one character changed) and benign traffic; written as combined, W3C and JSON
lines. Value generation reads the rule's YAML independently of the engine's own Sigma parser: it
only has to make lines worth comparing, the verdicts come from the two engines.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import yaml

FIELDS = ("cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "cs-user-agent", "cs-referer", "cs-username",
          "cs-host", "c-ip")
BENIGN = [
    {"cs-method": "GET", "cs-uri-query": "/index.html", "cs-user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},
    {"cs-method": "GET", "cs-uri-query": "/static/app.js?v=3", "cs-referer": "https://www.example.cn/"},
    {"cs-method": "POST", "cs-uri-query": "/api/v1/login", "sc-status": 401, "cs-user-agent": "okhttp/4.9"},
    {"cs-method": "GET", "cs-uri-query": "/search?q=select+a+plan&page=2", "sc-status": 200},
    {"cs-method": "GET", "cs-uri-query": "/images/logo.png", "sc-status": 304, "cs-username": "alice"},
    {"cs-method": "HEAD", "cs-uri-query": "/", "sc-status": 200, "cs-host": "www.example.cn"},
    {"cs-method": "GET", "cs-uri-query": "/wp-content/uploads/2024/cat.jpg", "sc-status": 404},
    {"cs-method": "GET", "cs-uri-query": "/docs/a%20b.pdf", "sc-status": 200, "cs-user-agent": "curl/8.4.0"},
]


def sample(text: str, mods: list[str]) -> str:
    """A string satisfying a Sigma string value: wildcards filled, escapes undone, modifiers honoured."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "*?\\":
            out.append(text[i + 1])
            i += 2
            continue
        out.append("AbC" if c == "*" else "Z" if c == "?" else c)
        i += 1
    s = "".join(out)
    if "contains" in mods:
        s = "xq" + s + "qx"
    elif "startswith" in mods:
        s = s + "tail"
    elif "endswith" in mods:
        s = "/head" + s
    return s


def _value(key: str, val: Any) -> Any:
    name, *mods = key.split("|")
    if val is None:
        return None
    if "re" in mods:
        return "h" * 160 + ".example"   # the one |re value of the rules: '.{150}'
    if isinstance(val, (int, float)) and not isinstance(val, bool) and not mods:
        return val
    return sample(str(val), mods)


def _compose(parts: list[tuple[list[str], str]]) -> str:
    """One value satisfying several keys on one field (a startswith, contains, an endswith)."""
    head = [v for mods, v in parts if "startswith" in mods]
    tail = [v for mods, v in parts if "endswith" in mods]
    middle = [v for mods, v in parts if "startswith" not in mods and "endswith" not in mods]
    return "".join(head[:1]) + "&".join(middle) + "".join(tail[:1])


def selection_records(sel: Any) -> list[dict[str, Any]]:
    """Records (Sigma field → value, plus "keywords": [...]) that each satisfy the selection."""
    if isinstance(sel, list) and sel and all(isinstance(x, dict) for x in sel):
        return [r for x in sel for r in selection_records(x)]
    if isinstance(sel, list):
        return [{"keywords": [sample(str(k), [])]} for k in sel]
    if not isinstance(sel, dict):
        return [{"keywords": [sample(str(sel), [])]}]
    base: dict[str, Any] = {}
    pieces: dict[str, list[tuple[list[str], Any]]] = {}
    variants: list[tuple[str, int, list[Any]]] = []
    for key, val in sel.items():
        name, *mods = key.split("|")
        vals = val if isinstance(val, list) else [val]
        if name == "":
            base.setdefault("keywords", []).extend(sample(str(v), []) for v in vals)
            continue
        one = [m for m in mods if m != "all"]
        if "all" in mods:
            value = "&".join(str(_value("|".join([name, *one]), v)) for v in vals) if "contains" in mods \
                else _value(key, vals[0])
            pieces.setdefault(name, []).append((one, value))
            continue
        pieces.setdefault(name, []).append((one, _value(key, vals[0])))
        if len(vals) > 1:
            variants.append((name, len(pieces[name]) - 1, [_value(key, v) for v in vals[1:]]))
    for name, parts in pieces.items():
        if len(parts) == 1 or not all(isinstance(v, str) for _, v in parts):
            base[name] = parts[0][1]
        else:
            base[name] = _compose(parts)
    out = [base]
    for name, at, alts in variants[:3]:
        for a in alts[:12]:
            parts = list(pieces[name])
            parts[at] = (parts[at][0], a)
            value = parts[0][1] if len(parts) == 1 or not all(isinstance(v, str) for _, v in parts) else _compose(parts)
            out.append({**base, name: value})
    return out


def null_fields(sel: Any) -> set[str]:
    """Fields a selection requires to be absent (so the hit lines give them a value)."""
    maps = sel if isinstance(sel, list) else [sel]
    return {k.split("|")[0] for m in maps if isinstance(m, dict) for k, v in m.items() if v is None}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if k == "keywords":
            out["keywords"] = [*out.get("keywords", []), *v]
        elif k in out and isinstance(out[k], str) and isinstance(v, str) and out[k] != v:
            out[k] = out[k] + "&" + v      # both contain-values survive; an equality one may not
        else:
            out[k] = v
    return out


def negated(condition: str, names: list[str]) -> set[str]:
    found: set[str] = set()
    for mt in re.finditer(r"\bnot\s+(?:(?:1|all)\s+of\s+)?([A-Za-z0-9_*]+)", condition):
        pat = mt.group(1)
        found |= {n for n in names if n == pat or fnmatch.fnmatchcase(n, pat)}
    return found


def near_misses(rec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k, v in rec.items():
        if k == "keywords":
            if v:
                out.append({**rec, "keywords": [_flip(v[0]), *v[1:]]})
        elif isinstance(v, str) and len(v) > 1:
            out.append({**rec, k: _flip(v)})
        elif isinstance(v, int):
            out.append({**rec, k: v + 1})
        if len(out) >= 4:
            break
    return out


def _flip(s: str) -> str:
    i = len(s) // 2
    return s[:i] + ("#" if s[i] != "#" else "!") + s[i + 1:]


def rule_records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    det = doc["detection"]
    cond = det["condition"]
    cond = " ".join(cond) if isinstance(cond, list) else str(cond)
    names = [n for n in det if n not in ("condition", "timeframe")]
    neg = negated(cond, names)
    positive = [n for n in names if n not in neg]
    out: list[dict[str, Any]] = []
    merged: dict[str, Any] = {}
    options = {n: selection_records(det[n]) for n in positive}
    for n in positive:
        out += options[n]
        merged = merge(merged, options[n][0])
    for n in positive:   # every alternative of one selection together with the others' first
        for alt in options[n][1:13]:
            combo: dict[str, Any] = {}
            for other in positive:
                combo = merge(combo, alt if other == n else options[other][0])
            out.append(combo)
    for n in neg:
        for f in null_fields(det[n]):
            merged.setdefault(f, "https://www.example.cn/page" if f == "cs-referer" else "Mozilla/5.0 benign")
    out.append(merged)
    for n in neg:
        for r in selection_records(det[n])[:6]:
            out.append(merge(merged, r))
    out += near_misses(merged)
    return out


def uri_of(rec: dict[str, Any]) -> str:
    stem, q = rec.get("cs-uri-stem"), rec.get("cs-uri-query")
    if q is None:
        uri = stem or "/index.html"
    elif str(q).startswith("/"):
        uri = str(q) if not stem or str(stem) in str(q) else f"{stem}?{str(q).lstrip('/')}"
    else:
        uri = f"{stem or '/app'}?{q}"
    for kw in rec.get("keywords", []):
        uri += ("&" if "?" in uri else "?") + "k=" + kw
    return uri.replace("\t", " ").replace("\n", " ")


def _clean(v: Any) -> str:
    return str(v).replace("\t", " ").replace("\n", " ").replace('"', '\\"')


def _w3c_escaped(v: Any) -> str:
    """CloudFront percent-encodes user agent and referer (the reader decodes them back)."""
    return str(v).replace("%", "%25").replace(" ", "%20").replace("\t", "%09")


def _token(v: Any) -> str:
    """One space-separated field of a Tencent CDN line: no spaces, no quotes."""
    return str(v).replace(" ", "%20").replace('"', "%22").replace("\t", "%09").replace("\n", "%0A") or "-"


def write_logs(records: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """The records as one combined, one W3C, one JSON-lines and one Tencent CDN file."""
    folder.mkdir(parents=True, exist_ok=True)
    tencent: list[str] = []
    comb, w3c, jsl = [], ["#Version: 1.0", "#Fields: date time c-ip cs-username cs-method cs-uri-stem cs-uri-query "
                          "sc-status sc-bytes cs(User-Agent) cs(Referer) cs-host"], []
    for i, rec in enumerate(records):
        ip = rec.get("c-ip") or f"198.51.100.{i % 250 + 1}"
        size = rec.get("sc-bytes") if isinstance(rec.get("sc-bytes"), int) else 512
        method = rec.get("cs-method") or "GET"
        status = rec.get("sc-status") if rec.get("sc-status") is not None else 200
        status = status if re.fullmatch(r"\d{3}", str(status)) else 200
        uri = uri_of(rec)
        ua, ref, user, host = (rec.get(k) for k in ("cs-user-agent", "cs-referer", "cs-username", "cs-host"))
        method = method if re.fullmatch(r"[A-Za-z]{1,20}", str(method)) else "GET"
        comb.append(f'{ip} - {_clean(user).replace(" ", "_") if user else "-"} [01/Nov/2026:10:00:{i % 60:02d} +0000] '
                    f'"{method} {uri.replace(chr(34), "%22")} HTTP/1.1" {status} {size} '
                    f'"{_clean(ref) if ref else "-"}" "{_clean(ua) if ua else "-"}"')
        stem, _, query = uri.partition("?")
        w3c.append("\t".join(["2026-11-01", f"10:00:{i % 60:02d}", ip, str(user).replace(" ", "+") if user else "-",
                              str(method), stem.replace(" ", "%20"), query.replace(" ", "%20") or "-", str(status),
                              str(size), _w3c_escaped(ua) if ua else "-", _w3c_escaped(ref) if ref else "-", str(host) if host else "-"]))
        jsl.append(json.dumps({"ts": f"2026-11-01T10:00:{i % 60:02d}Z", "client_ip": ip, "method": method, "uri": uri,
                               "status": int(status), "bytes_sent": size, "referer": ref, "user_agent": ua,
                               "username": user, "host": host}))
        # Tencent CDN: the line's domain is the host asked for (cs-host maps to it for this format)
        agent = _clean(ua).replace('\\"', "%22") if ua else "-"
        tencent.append(" ".join([f"20261101{18 + i % 6:02d}00{i % 60:02d}", ip, _token(host or "www.example.cn"),
                                 _token(uri), str(size), "guangdong", "telecom", str(status),
                                 _token(ref) if ref else "-", "12", f'"{agent}"', '"-"', str(method), "HTTP/1.1",
                                 "MISS"]))
    paths = {"combined": folder / "access.log", "w3c": folder / "cloudfront.log", "jsonl": folder / "access.jsonl",
             "tencent-cdn": folder / "tencent.log"}
    paths["tencent-cdn"].write_text("\n".join(tencent) + "\n", encoding="utf-8")
    paths["combined"].write_text("\n".join(comb) + "\n", encoding="utf-8")
    paths["w3c"].write_text("\n".join(w3c) + "\n", encoding="utf-8")
    paths["jsonl"].write_text("\n".join(jsl) + "\n", encoding="utf-8")
    return paths


def corpus_records(folder: Path) -> list[dict[str, Any]]:
    """Records for every rule document in ``folder``, then benign traffic."""
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and "detection" in doc:
                out += rule_records(doc)
    return out + BENIGN
