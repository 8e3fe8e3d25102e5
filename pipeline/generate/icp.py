"""Synthetic ICP filings, licence records, site traffic and live streams with planted licensing and
stream violations, consistent with the objects and logs generated before, and their ground truth.

``generate_icp`` runs after ``generate_objects`` and ``generate_logs``: it reads ``bindings.csv``,
adds sites (domains bound to the existing accounts), the column ``origin_bucket``, a little traffic
of its own (``logs/sites/access.jsonl``) and objects (``objects/sites/yingshi-vod.jsonl``) carrying
words of the ``site_*`` rules, then writes ``icp/`` (filings in csv and jsonl, licences), ``streams/``
and ``truth/icp.jsonl`` / ``truth/streams.jsonl``. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..sources.bindings import COLUMNS as BINDING_COLUMNS

UNFILED = "icp.filings.unfiled_domain_serving"
LIMITED = "icp.filings.filing_limited"
ENTITY = "icp.filings.entity_mismatch"
DECLARED = "icp.filings.declared_filing_mismatch"
LICENCE = "icp.licences.licence_missing"
S_GAMBLING = "streams.content.gambling"
S_PORN = "streams.content.pornography"
S_CHEATS = "streams.content.game_cheats"
BEIJING = timezone(timedelta(hours=8))
DAY = datetime(2026, 11, 1, 9, 0, tzinfo=BEIJING)
VOD_BUCKET = "yingshi-vod"
FILING_HEADER = ["unitName", "natureName", "mainLicence", "serviceLicence", "domain", "contentTypeName",
                 "updateRecordTime", "limitAccess", "status"]
LICENCE_HEADER = ["type", "number", "holder", "domains", "valid_from", "valid_to"]
STREAM_HEADER = ["account_id", "hub", "stream_key", "title", "description", "started_at", "status"]

# Words of the site_* rules (rules/sites/fields.yaml), used in planted URLs and object keys.
GAME_PATHS = ("/网络游戏/开服公告.html", "/游戏充值/index.html", "/手游下载/latest.apk", "/游戏币/shop.html")
NEWS_PATHS = ("/时政新闻/20261101.html", "/社会新闻/20261101.html", "/今日要闻/index.html", "/新闻频道/1.html",
              "/头条新闻/2.html")
DRUG_PATHS = ("/处方药/list.html", "/网上药店/index.html")
BOOK_PATHS = ("/网络文学/top.html", "/小说连载/3.html", "/章节目录/88.html")
VOD_KEYS = ("vod/电视剧全集_第1集.mp4", "vod/网络电影_星河.mp4", "vod/在线观看_合集.m3u8", "vod/影视剧_花絮.mp4")
CLEAN_PATHS = ("/", "/index.html", "/about.html", "/static/app.js", "/images/banner.jpg", "/contact.html")


@dataclass(frozen=True)
class NewSite:
    domain: str
    requests: tuple[str, ...]        # paths requested in the site traffic file
    filed: str = "active"            # active | revoked | none
    declared: str = "own"            # own | blank | other
    content_types: str = ""
    origin_bucket: str = ""


def _registered(domain: str) -> str:
    """The domain a filing names: www.shop00.com.cn is filed as shop00.com.cn."""
    return domain[4:] if domain.startswith("www.") else domain


def _truth(rule_id: str, domain: str, account: str, note: str) -> dict[str, str]:
    return {"rule_id": rule_id, "subject_type": "domain", "subject_id": domain, "account_id": account, "note": note}


def generate_icp(out_dir: Path, *, seed: int) -> dict[str, Any]:
    """Write filings, licences, site traffic and objects, streams and their ground truth under ``out_dir``.

    Returns a summary and ``config``: the source entries to add to the config, keyed by source kind
    (``icp``, ``licences``, ``streams``, ``logs``, ``objects``; paths relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    with open(out_dir / "bindings.csv", newline="", encoding="utf-8") as fh:
        bindings = [dict(r) for r in csv.DictReader(fh)]
    for b in bindings:
        b.setdefault("origin_bucket", "")
    accounts = sorted({b["account_id"] for b in bindings})
    entity = {b["account_id"]: b["verified_entity"] for b in bindings}
    main_of = {a: next(b["declared_filing"].split("-")[0] for b in bindings
                       if b["account_id"] == a and b["resource_type"] == "domain") for a in accounts}
    existing = [b for b in bindings if b["resource_type"] == "domain"]
    truth: list[dict[str, str]] = []
    filings: list[list[str]] = []

    def filing_row(domain: str, number: str, unit: str, *, content: str = "", limited: bool = False,
                   status: str = "") -> list[str]:
        when = (DAY - timedelta(days=int(rng.integers(30, 900)))).strftime("%Y-%m-%d %H:%M:%S")
        return [unit, "企业", number.split("-")[0], number, _registered(domain), content, when,
                "是" if limited else "否", status]

    # Existing sites (with traffic from the generated logs): filed as declared, with a few plants.
    limited_site, wrong_entity, spaced_entity, malformed_decl, other_decl = (existing[i]["resource"] for i in (1, 4, 7, 10, 13))
    for b in existing:
        d, a = b["resource"], b["account_id"]
        unit = entity[a]
        if d == wrong_entity:
            unit = next(entity[x] for x in accounts if entity[x] != entity[a])
            truth.append(_truth(ENTITY, d, a, f"filing names {unit}, account verified as {entity[a]}"))
        elif d == spaced_entity:
            unit = unit[:2] + " " + unit[2:]   # a space only: the same entity once normalized (near-miss)
        filings.append(filing_row(d, b["declared_filing"], unit, limited=d == limited_site))
        if d == limited_site:
            truth.append(_truth(LIMITED, d, a, "filing limited (limitAccess 是)"))
        if d == malformed_decl:
            b["declared_filing"] = b["declared_filing"].replace("ICP备20", "ICP备", 1)[:-2] + "-1"
            truth.append(_truth(DECLARED, d, a, f"declared number malformed: {b['declared_filing']}"))
        elif d == other_decl:
            b["declared_filing"] = existing[0]["declared_filing"] if existing[0]["account_id"] != a else \
                existing[-1]["declared_filing"]
            truth.append(_truth(DECLARED, d, a, f"declared another site's number {b['declared_filing']}"))

    # New sites bound to existing accounts, with traffic of their own.
    clean = list(CLEAN_PATHS)
    sites: dict[str, tuple[str, NewSite]] = {}
    plan = [
        NewSite("luntan88.example.cn", tuple(clean * 4), filed="none", declared="blank"),
        NewSite("shequ66.com.cn", tuple(clean * 3), filed="none", declared="other"),
        NewSite("exactly10.example.cn", tuple((clean * 2)[:10]), filed="none", declared="blank"),
        NewSite("tiny-demo.example.cn", tuple(clean[:3]), filed="none", declared="blank"),
        NewSite("revoked-site.example.cn", tuple(clean * 3), filed="revoked"),
        NewSite("static-cdn.example.cn", (), filed="none", declared="blank", origin_bucket="lanting-web"),
        NewSite("youxi01.example.cn", GAME_PATHS + tuple(clean)),
        NewSite("youxi02.example.cn", GAME_PATHS + tuple(clean)),
        NewSite("zixun01.example.cn", NEWS_PATHS + tuple(clean), content_types="新闻"),
        NewSite("yaofang01.example.cn", DRUG_PATHS + tuple(clean)),
        NewSite("yuedu01.example.cn", BOOK_PATHS + tuple(clean)),
        NewSite("vod01.example.cn", tuple(clean), origin_bucket=VOD_BUCKET),
        NewSite("shared01.example.cn", tuple(clean)),
    ]
    owner_of = {s.domain: accounts[(k * 5 + 1) % len(accounts)] for k, s in enumerate(plan)}
    owner_of["static-cdn.example.cn"] = "acct-1008"   # owns lanting-web in the objects data
    for k, s in enumerate(plan):
        a = owner_of[s.domain]
        number = f"{main_of[a]}-{50 + k}"
        declared = {"own": number, "blank": "", "other": f"{main_of[accounts[0]]}-{90 + k}"}[s.declared]
        bindings.append(dict(zip(BINDING_COLUMNS, [a, "domain", s.domain, entity[a], declared, s.origin_bucket])))
        sites[s.domain] = (a, s)
        if s.filed != "none":
            filings.append(filing_row(s.domain, number, entity[a], content=s.content_types,
                                      status="已注销" if s.filed == "revoked" else ""))
        serving = len(s.requests) >= 10 or s.origin_bucket
        if s.filed != "active" and serving:
            truth.append(_truth(UNFILED, s.domain, a, f"{len(s.requests)} requests, filing {s.filed}"))
        if s.filed == "revoked":
            truth.append(_truth(LIMITED, s.domain, a, "filing revoked"))
        if s.declared == "other":
            truth.append(_truth(DECLARED, s.domain, a, f"declared {declared}, not the domain's"))
    a = owner_of["youxi01.example.cn"]
    truth.append(_truth(LICENCE, "youxi01.example.cn", a, "online game without 网络文化经营许可证"))
    truth.append(_truth(LICENCE, "yuedu01.example.cn", owner_of["yuedu01.example.cn"], "publishing licence expired"))
    truth.append(_truth(LICENCE, "vod01.example.cn", owner_of["vod01.example.cn"], "audiovisual objects, no licence"))
    other = next(x for x in accounts if entity[x] != entity[owner_of["shared01.example.cn"]])
    shared_number = next(b["declared_filing"] for b in bindings if b["resource"] == "shared01.example.cn")
    bindings.append(dict(zip(BINDING_COLUMNS, [other, "domain", "shared01.example.cn", entity[other], shared_number, ""])))
    truth.append(_truth(ENTITY, "shared01.example.cn", other, "bound to two accounts; the second's entity differs"))

    # Authoritative records that are malformed: quarantined, and about unbound domains only.
    filings.append(["旧站点有限公司", "企业", "浙ICP备123号", "浙ICP备123号-1", "old-portal.example.cn", "", "2020-01-01", "否", ""])
    filings.append(["旧站点有限公司", "企业", "浙ICP备20200001号", "浙ICP备20200001号", "legacy.example.cn", "", "2020-01-01", "否", ""])

    icp = out_dir / "icp"
    icp.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(filings)).tolist()
    half = len(order) // 2
    with open(icp / "filings.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(FILING_HEADER)
        w.writerows(filings[i] for i in sorted(order[:half]))
    with open(icp / "filings.jsonl", "w", encoding="utf-8") as fh:
        for i in sorted(order[half:]):
            rec = dict(zip(FILING_HEADER, filings[i]))
            rec["limitAccess"] = rec["limitAccess"] == "是"
            fh.write(json.dumps({k: v for k, v in rec.items() if v != ""}, ensure_ascii=False) + "\n")

    game_holder = entity[owner_of["youxi02.example.cn"]]
    licences = [
        ["网络文化经营许可证", "浙网文〔2026〕0417-021号", game_holder, "youxi02.example.cn", "2026-01-01", "2029-01-01"],
        ["网络出版服务许可证", "（署）网出证（浙）字第021号", entity[owner_of["yuedu01.example.cn"]], "yuedu01.example.cn",
         "2021-01-01", "2025-12-31"],
        ["ICP经营许可证", "浙B2-20260417", game_holder, "", "2026-01-01", "2031-01-01"],
        ["ICP经营许可证", "浙B2-2026041", game_holder, "", "2026-01-01", "2031-01-01"],   # malformed: quarantined
    ]
    with open(icp / "licences.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(LICENCE_HEADER)
        w.writerows(licences)

    _write_site_traffic(out_dir / "logs" / "sites" / "access.jsonl", sites, rng)
    _write_vod_objects(out_dir / "objects" / "sites" / f"{VOD_BUCKET}.jsonl", owner_of["vod01.example.cn"])
    with open(out_dir / "bindings.csv", "w", newline="", encoding="utf-8") as fh:
        dw = csv.DictWriter(fh, fieldnames=BINDING_COLUMNS)
        dw.writeheader()
        dw.writerows({k: b.get(k, "") for k in BINDING_COLUMNS} for b in bindings)

    stream_truth, stream_counts = _write_streams(out_dir / "streams", bindings, rng)
    tdir = out_dir / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    truth.sort(key=lambda t: (t["rule_id"], t["subject_id"]))
    (tdir / "icp.jsonl").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth), encoding="utf-8")
    (tdir / "streams.jsonl").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in stream_truth),
                                        encoding="utf-8")
    return {
        "filings": len(filings), "licences": len(licences), "licensing_violations": len(truth),
        "streams": stream_counts["rows"], "stream_violations": len(stream_truth),
        "quarantined": {"icp": 2, "licences": 1, "streams": stream_counts["malformed"]},
        "config": {
            "icp": [{"path": "icp/filings.csv", "format": "csv"}, {"path": "icp/filings.jsonl", "format": "jsonl"}],
            "licences": [{"path": "icp/licences.csv", "format": "csv"}],
            "streams": [{"path": "streams/streams.jsonl", "format": "jsonl"}, {"path": "streams/streams.csv", "format": "csv"}],
            "logs": [{"path": "logs/sites/access.jsonl", "format": "jsonl"}],
            "objects": [{"path": f"objects/sites/{VOD_BUCKET}.jsonl", "format": "jsonl", "bucket": VOD_BUCKET,
                         "account_id": owner_of["vod01.example.cn"]}],
        },
        "truth": str(tdir / "icp.jsonl"),
    }


def _write_site_traffic(path: Path, sites: dict[str, tuple[str, NewSite]], rng: np.random.Generator) -> None:
    """A few requests per new site (JSON lines): too few for any traffic rule, each from its own address."""
    lines = []
    for n, (domain, (_a, s)) in enumerate(sorted(sites.items())):
        for i, p in enumerate(s.requests):
            ts = DAY + timedelta(minutes=n * 7 + i * 3, seconds=int(rng.integers(0, 60)))
            lines.append((ts, json.dumps({
                "ts": ts.isoformat(), "client_ip": f"183.{n + 10}.{i % 250 + 1}.{int(rng.integers(1, 250))}",
                "domain": domain, "method": "GET", "uri": quote(p, safe="/.?=&-_"), "status": 200,
                "bytes_sent": int(rng.integers(800, 40_000)), "referer": None,
                "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/128.0 Safari/537.36",
                "request_time_ms": 21.0, "cache_status": "HIT"}, ensure_ascii=False)))
    lines.sort()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(text + "\n" for _ts, text in lines), encoding="utf-8")


def _write_vod_objects(path: Path, account: str) -> None:
    """The audiovisual site's origin bucket: programmes named with words of sites.fields.audiovisual."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"account_id": account, "bucket": VOD_BUCKET, "key": key, "size": 52_428_800 + k, "mime_type": "video/mp4",
             "etag": f"Fq{k:02d}vodEtag000000000000000000", "put_time": f"2026-10-2{k}T08:00:00Z", "status": "0"}
            for k, key in enumerate(VOD_KEYS)]
    rows.append({"account_id": account, "bucket": VOD_BUCKET, "key": "covers/poster_01.jpg", "size": 120_000,
                 "mime_type": "image/jpeg", "etag": "Fq99coverEtag00000000000000000", "put_time": "2026-10-20T08:00:00Z"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _write_streams(folder: Path, bindings: list[dict[str, str]], rng: np.random.Generator) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Streams over every hub, planted violations and near-misses, two malformed rows; jsonl and csv halves."""
    hubs = sorted({(b["resource"], b["account_id"]) for b in bindings if b["resource_type"] == "hub"})
    titles = ("周末户外骑行直播", "西湖夜景慢直播", "新品发布会", "钢琴演奏", "美食探店：杭州小笼包", "篮球比赛解说",
              "读书分享会", "英语听力练习", "书法作品展示", "端午龙舟赛")
    planted = [(S_GAMBLING, "百家乐真人荷官 在线开户", "扫码进群"), (S_GAMBLING, "今晚直播", "澳門賭場 帶你贏"),
               (S_GAMBLING, "六 合 彩 内部资料", ""), (S_PORN, "深夜裸聊 加微信", ""), (S_PORN, "成人直播间", "仅限会员"),
               (S_CHEATS, "传奇私服 新区开服", ""), (S_CHEATS, "吃鸡外挂 免费试用", "")]
    near = [("普法直播：拒绝赌博 珍爱家庭", ""), ("明星私服穿搭分享", ""), ("外挂式空调安装教学", "")]
    rows: list[list[str]] = []
    truth: list[dict[str, str]] = []
    start = DAY - timedelta(hours=2)
    items = [(None, t, "") for t in titles * 2] + [(r, t, d) for r, t, d in planted] + [(None, t, d) for t, d in near]
    for k, (rule_id, title, desc) in enumerate(items):
        hub, account = hubs[k % len(hubs)]
        key = f"room-{k:03d}"
        when = (start + timedelta(minutes=int(rng.integers(0, 600)))).astimezone(timezone.utc).isoformat()
        rows.append(["" if k % 4 == 0 else account, hub, key, title, desc, when, "ended" if k % 3 else "live"])
        if rule_id:
            truth.append({"rule_id": rule_id, "subject_type": "stream", "subject_id": f"{hub}/{key}", "account_id": account})
    rows.insert(5, [hubs[0][1], hubs[0][0], "", "没有推流码", "", start.isoformat(), "live"])
    rows.insert(11, [hubs[1][1], hubs[1][0], "room-bad", "时间错误", "", "2026-11-31T25:00:00", "live"])
    folder.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    with open(folder / "streams.jsonl", "w", encoding="utf-8") as fh:
        for r in rows[:half]:
            fh.write(json.dumps({k: v for k, v in zip(STREAM_HEADER, r) if v != ""}, ensure_ascii=False) + "\n")
    with open(folder / "streams.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(STREAM_HEADER)
        w.writerows(rows[half:])
    truth.sort(key=lambda t: (t["rule_id"], t["subject_id"]))
    return truth, {"rows": len(rows), "malformed": 2}
