"""Synthetic object metadata in every object format, with planted violations and their ground truth.

``generate_objects`` writes a handful of accounts' buckets as generic CSV / JSONL / Parquet, Qiniu
listings, qshell listings and an S3 Inventory, plants rows for every starter rule under ``rules/objects``
(evasions that must match, near-misses that must not), a few malformed rows, and a config to scan it all.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from ..errors import PipelineError
from ..records import OBJECTS, PROVENANCE

REPO_RULES = Path(__file__).resolve().parents[2] / "rules"

GENERIC = ("csv", "jsonl", "parquet")
ALL_FORMATS = (*GENERIC, "qiniu-json", "qshell", "s3-inventory")
STORAGE = ("STANDARD", "IA", "ARCHIVE", "DEEP_ARCHIVE")          # Qiniu type 0..3
S3_STORAGE = ("STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE")
INVENTORY_DATE = "2026-11-01T00-00Z"
S3_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
T_START = np.datetime64("2026-10-01T00:00:00", "s").astype(np.int64)
T_END = np.datetime64("2026-12-01T00:00:00", "s").astype(np.int64)

# ext → (mime type, log-size mean, log-size sigma)
EXT: dict[str, tuple[str, float, float]] = {
    "jpg": ("image/jpeg", 13.0, 1.0), "jpeg": ("image/jpeg", 13.0, 1.0), "png": ("image/png", 12.0, 1.2),
    "webp": ("image/webp", 11.5, 1.0), "heic": ("image/heic", 14.0, 0.6), "gif": ("image/gif", 12.5, 1.0),
    "svg": ("image/svg+xml", 8.5, 1.0), "mp4": ("video/mp4", 18.0, 1.5), "mov": ("video/quicktime", 18.5, 1.2),
    "avi": ("video/x-msvideo", 18.0, 1.2), "m3u8": ("application/vnd.apple.mpegurl", 7.0, 0.5),
    "ogg": ("audio/ogg", 13.5, 1.0), "mp3": ("audio/mpeg", 15.0, 0.6), "pdf": ("application/pdf", 13.5, 1.3),
    "epub": ("application/epub+zip", 14.0, 0.8), "txt": ("text/plain", 8.0, 1.5),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", 11.5, 1.0),
    "csv": ("text/csv", 14.0, 2.0), "json": ("application/json", 9.0, 2.0),
    "parquet": ("application/octet-stream", 17.0, 1.5), "gz": ("application/gzip", 19.0, 1.5),
    "zip": ("application/zip", 16.0, 1.5), "rar": ("application/vnd.rar", 16.0, 1.5),
    "exe": ("application/x-msdownload", 17.0, 1.0), "msi": ("application/x-msi", 17.0, 1.0),
    "dll": ("application/x-msdownload", 13.0, 1.0), "apk": ("application/vnd.android.package-archive", 17.5, 0.8),
    "dmg": ("application/x-apple-diskimage", 18.0, 0.8), "html": ("text/html", 9.5, 1.0),
    "php": ("text/html", 8.5, 1.0), "css": ("text/css", 9.0, 1.0), "js": ("application/javascript", 10.0, 1.2),
    "woff2": ("font/woff2", 10.5, 0.5), "fbx": ("application/octet-stream", 15.0, 1.0),
    "java": ("text/x-java-source", 8.5, 0.8), "bin": ("application/octet-stream", 15.0, 1.5),
}

# Clean vocabulary: none of it may match a starter rule, alone or next to another word.
ZH_STEMS = (
    "春游", "年会", "产品发布会", "团建", "毕业典礼", "婚礼", "西湖", "外滩夜景", "黄山日出", "故宫",
    "银杏", "猫咪", "小狗", "美食探店", "火锅", "小笼包", "咖啡拉花", "城市夜景", "地铁线路图", "会议纪要",
    "季度报告", "用户手册", "操作指南", "产品目录", "宣传册", "家常菜谱", "读书笔记", "古诗词", "儿童绘本",
    "英语听力", "课程表", "招聘海报", "旅行攻略", "登山", "骑行", "马拉松", "篮球比赛", "钢琴演奏", "书法作品",
    "国画", "摄影作品", "海边日落", "雪景", "樱花", "荷花", "新年快乐", "中秋团圆", "端午龙舟",
)
EN_STEMS = (
    "spring trip", "team", "product launch", "meeting notes", "quarterly report", "user guide", "intro",
    "trailer", "episode", "chapter", "lesson", "draft", "final", "release", "sprite", "texture", "icon",
    "sound", "theme", "screenshot", "sunset", "mountain", "river", "city night", "coffee", "dinner",
    "family", "wedding", "graduation", "concert", "festival", "garden", "museum", "library", "sales",
    "budget", "roadmap", "design", "mockup", "prototype", "sketch", "photo", "scan", "export", "metrics",
    "orders", "C++ primer", "Q&A", "50% off",
)
ZH_SUFFIX = ("照片", "视频", "合集", "高清版", "精选", "花絮", "封面", "原图", "预告片", "第2期", "完整版", "")
DESCRIPTIONS = (
    "拍摄于杭州", "团队年会现场记录", "内部资料，请勿外传", "高清原片，仅供预览", "Uploaded by the content team",
    "Draft for review", "客户提供的素材", "Final version, approved", "周末随手拍", "", "", "",
)
TAGS = ("旅行", "美食", "家庭", "工作", "设计", "游戏", "音乐", "教育", "运动", "风景", "宠物",
        "travel", "food", "work", "design", "music", "docs")

# profile → (key prefix, extensions written under it)
PROFILES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "video": (("vod", ("mp4", "mov", "m3u8")), ("clips", ("mp4",)), ("trailers", ("mp4", "mov")), ("covers", ("jpg",))),
    "photo": (("photos", ("jpg", "jpeg", "png")), ("albums", ("jpg", "heic")), ("share", ("jpg", "webp"))),
    "software": (("releases", ("exe", "apk", "dmg")), ("installers", ("msi", "exe")), ("patches", ("zip",))),
    "books": (("books", ("pdf", "epub")), ("covers", ("jpg",)), ("samples", ("pdf",))),
    "data": (("backup", ("gz", "parquet")), ("exports", ("csv", "json")), ("datasets", ("parquet", "csv"))),
    "web": (("static/js", ("js",)), ("static/css", ("css",)), ("img", ("png", "svg")), ("pages", ("html",)),
            ("fonts", ("woff2",))),
    "game": (("textures", ("png",)), ("audio", ("ogg", "mp3")), ("models", ("fbx",)), ("bundles", ("json",))),
    "ugc": (("forum", ("jpg", "png", "gif")), ("attachments", ("pdf", "docx")), ("videos", ("mp4",))),
    "lottery": (("draws", ("pdf", "jpg")), ("notices", ("html", "pdf"))),
}


@dataclass(frozen=True)
class Bucket:
    name: str
    account_id: str
    fmt: str            # "generic" (csv / jsonl / parquet), or the listing format it is exported in
    profile: str
    weight: float
    uploaders: tuple[str, ...]


BUCKETS: tuple[Bucket, ...] = (
    Bucket("xinghe-media", "acct-1001", "qiniu-json", "video", 0.13, ("editor01", "editor02", "ingest-bot")),
    Bucket("shiguang-photos", "acct-1002", "qiniu-json", "photo", 0.12, ("lin.xiao", "zhou.min", "mobile-app")),
    Bucket("bluefin-downloads", "acct-1003", "qshell", "software", 0.08, ("ci-release", "ops")),
    Bucket("moxiang-books", "acct-1004", "qshell", "books", 0.08, ("catalog", "wang.lei")),
    Bucket("pinecone-backup", "acct-1007", "s3-inventory", "data", 0.09, ("etl",)),
    Bucket("lanting-web", "acct-1008", "s3-inventory", "web", 0.08, ("deploy",)),
    Bucket("xinghe-static", "acct-1001", "generic", "web", 0.08, ("deploy", "editor01")),
    Bucket("bluefin-game-assets", "acct-1003", "generic", "game", 0.1, ("art-team", "ci-release")),
    Bucket("yunji-forum-uploads", "acct-1009", "generic", "ugc", 0.13, ("u10231", "u20877", "u31415", "u99001")),
    Bucket("lanting-ugc", "acct-1008", "generic", "photo", 0.07, ("app-user", "moderator")),
    Bucket("cwl-lottery-official", "acct-1005", "generic", "lottery", 0.02, ("press-office",)),
    Bucket("orchid-security-training", "acct-1006", "generic", "web", 0.02, ("sec-awareness",)),
)
BY_NAME = {b.name: b for b in BUCKETS}

G = "objects.gambling.promotion"
C = "objects.game_cheats.private_server_or_cheat"
PK = "objects.pornography.keywords"
PL = "objects.pornography.pulp_label"
S = "objects.superstition.paid_rituals"
D = "objects.contraband.drugs"
W = "objects.contraband.weapons"
MT = "objects.malware.trojan_package"
MP = "objects.malware.phishing_page"
H = "objects.hashes.known_bad"


@dataclass(frozen=True)
class Plant:
    """One planted row: its fields (``{n}`` in the key becomes the row's serial) and the rules it must hit."""

    rule_ids: tuple[str, ...]
    evasion: str
    key: str
    title: str | None = None
    description: str | None = None
    tags: str | None = None
    pulp: float | None = None           # moderation score; None: a low one where the object is an image/video
    hash: str | None = None             # "md5" | "etag" | "md5-near": hash taken from the block lists
    bucket: str | None = None           # forced bucket (generic formats only)

    @property
    def kind(self) -> str:
        return "violation" if self.rule_ids else "near_miss"

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats that carry every field this plant needs."""
        if self.title or self.description or self.tags or self.pulp is not None or self.bucket:
            return GENERIC
        if self.hash in ("md5", "md5-near"):
            return (*GENERIC, "qiniu-json")
        return ALL_FORMATS


def _v(rule: str, evasion: str, key: str, **kw: Any) -> Plant:
    return Plant((rule,), evasion, key, **kw)


def _nm(evasion: str, key: str, **kw: Any) -> Plant:
    return Plant((), evasion, key, **kw)


PLANTS: tuple[Plant, ...] = (
    _v(G, "none", "promo/百家乐真人荷官在线_{n}.jpg"),
    _v(G, "full-width", "ads/ＣＡＳＩＮＯ_{n}.png"),
    _v(G, "traditional", "media/clip_{n}.mp4", title="澳門賭場線上開戶"),
    _v(G, "traditional", "videos/百家樂教學_{n}.mp4"),
    _v(G, "separator", "apk/博*彩-下载_{n}.apk"),
    _v(G, "zero-width", "img/赌\u200b博网站_{n}.png"),
    _v(G, "digit-variant", "lottery/⑥合彩开奖_{n}.jpg"),
    _v(G, "mixed-case", "games/BaCcArAt-guide_{n}.pdf"),
    _v(G, "regex", "banner/hero_{n}.png", description="扫码注册 xpj8888.vip 首存送彩金"),
    _v(G, "regex", "landing/amjs6688.com/index_{n}.html"),
    _v(G, "none", "uploads/poster_{n}.jpg", tags="棋牌,炸金花"),
    _nm("latin-boundary", "docs/casinos_history_{n}.pdf"),
    _nm("allow-phrase", "posters/拒绝赌博_珍爱家庭_{n}.pdf"),
    _nm("allow-phrase", "social/微博彩蛋合集_{n}.jpg"),
    _nm("exempt-bucket", "draws/时时彩开奖公告_{n}.pdf", bucket="cwl-lottery-official"),
    _nm("regex-boundary", "docs/alphabet2024.com_{n}.txt"),

    _v(C, "none", "downloads/传奇私服一键端_{n}.zip"),
    _v(C, "traditional", "tools/絕地求生外掛_{n}.rar"),
    _v(C, "separator", "news/banner_{n}.jpg", title="私 服 开 区 啦"),
    _v(C, "separator", "news/私-服-新区_{n}.jpg"),
    _v(C, "mixed-case", "cfg/AimBot_v2_{n}.dll"),
    _v(C, "full-width", "video/ｗａｌｌｈａｃｋ演示_{n}.mp4"),
    _v(C, "zero-width", "files/外\u200c挂下载_{n}.txt"),
    _nm("allow-phrase", "manuals/外挂式空调安装说明_{n}.pdf"),
    _nm("allow-phrase", "fashion/明星私服穿搭_{n}.jpg"),

    _v(PK, "none", "vids/clip_{n}.mp4", title="高清无码成人视频合集"),
    _v(PK, "none", "share/AV女优合集_{n}.mp4"),
    _v(PK, "mixed-case", "clips/Free-PoRn-HD_{n}.mp4"),
    _v(PK, "full-width", "anime/ｈｅｎｔａｉ_{n}.zip"),
    _v(PK, "traditional", "links/黃色網站大全_{n}.txt"),
    _v(PK, "zero-width", "live/裸\u200d聊直播_{n}.jpg"),
    _v(PK, "digit-variant", "stories/壹夜情_{n}.txt"),
    _v(PK, "separator", "chat/约.炮.群_{n}.png"),
    _v(PL, "label-threshold", "uploads/IMG_{n}.jpg", pulp=0.97),
    Plant((PK, PL), "label-and-keyword", "uploads/IMG_{n}.jpg", title="成人视频截图", pulp=0.95),
    _nm("latin-boundary", "src/java/AvatarService_{n}.java"),
    _nm("latin-boundary", "movies/holiday_{n}.avi"),
    _nm("latin-boundary", "papers/pornography-regulation-study_{n}.pdf"),
    _nm("allow-phrase", "manuals/AV线连接电视说明_{n}.pdf"),
    _nm("label-threshold", "uploads/IMG_{n}.jpg", pulp=0.89),

    _v(S, "none", "shop/转运符开光法器_{n}.jpg"),
    _v(S, "traditional", "ads/banner_{n}.png", title="專業算命 批八字 改運"),
    _v(S, "traditional", "ads/風水改運大師_{n}.png"),
    _v(S, "separator", "svc/驱 鬼 招 魂_{n}.png"),
    _v(S, "zero-width", "svc/下\ufeff蛊_{n}.jpg"),
    _nm("allow-phrase", "news/揭秘算命骗局_{n}.mp4"),
    _nm("partial-word", "architecture/园林风水布局研究_{n}.pdf"),
    _nm("partial-word", "help/如何打开光盘_{n}.pdf"),

    _v(D, "none", "shop/冰毒出售_{n}.jpg"),
    _v(D, "traditional", "post/搖頭丸批發_{n}.png"),
    _v(D, "mixed-case", "list/K粉-麻古_{n}.txt"),
    _v(D, "full-width", "ads/ｍｅｔｈ出售_{n}.png"),
    _v(D, "zero-width", "post/海\u200b洛\u200b因_{n}.txt"),
    _v(D, "separator", "post/芬-太-尼_{n}.txt"),
    _v(D, "mixed-case", "img/photo_{n}.jpg", description="MDMA tablets, discreet shipping"),
    _nm("allow-phrase", "agri/工业大麻种植许可_{n}.pdf"),
    _nm("allow-phrase", "blog/cover_{n}.jpg", title="这次遇到大麻烦了"),
    _nm("latin-boundary", "docs/methodology_{n}.pdf"),
    _nm("latin-boundary", "events/OK粉丝见面会_{n}.jpg"),
    _v(W, "none", "shop/仿真枪出售_{n}.jpg"),
    _v(W, "traditional", "post/獵槍轉讓_{n}.png"),
    _v(W, "separator", "post/cover_{n}.png", title="炸 药 配 方"),
    _nm("partial-word", "toys/水枪_{n}.jpg"),

    _v(MT, "none", "tools/远控免杀版_{n}.exe"),
    _v(MT, "double-extension", "attach/invoice_{n}.pdf.exe"),
    _v(MT, "mixed-case", "apps/KeyLogger_Pro_{n}.apk"),
    _v(MT, "traditional", "soft/盜號木馬_{n}.exe"),
    _v(MT, "full-width", "bin/ｘｍｒｉｇ_{n}.exe"),
    _nm("not-executable", "docs/木马查杀指南_{n}.pdf"),
    _nm("no-keyword", "apps/bluefin-launcher_{n}.exe"),
    _v(MP, "none", "site/网银升级_{n}.html"),
    _v(MP, "traditional", "web/賬戶凍結解除_{n}.html"),
    _v(MP, "separator", "h5/积分-兑换-现金_{n}.php"),
    _v(MP, "mixed-case", "AppleID-unlock_{n}.html"),
    _nm("training-bucket", "drills/网银升级_{n}.html", bucket="orchid-security-training"),
    _nm("not-a-page", "notice/防范网银升级诈骗_{n}.pdf"),

    _v(H, "md5", "files/sample_{n}.bin", hash="md5"),
    _v(H, "etag", "files/blob_{n}.bin", hash="etag"),
    _nm("hash-one-digit-off", "files/sample_{n}.bin", hash="md5-near"),
)


# --- vectorized helpers ------------------------------------------------------------------------

def _hex(rng: np.random.Generator, n: int, nbytes: int = 16) -> np.ndarray:
    """n random lower-case hex strings of ``nbytes`` bytes each."""
    raw = rng.bytes(n * nbytes).hex().encode()
    return np.frombuffer(raw, dtype=f"S{2 * nbytes}").astype(f"U{2 * nbytes}").astype(object)


_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)


def _qetags(rng: np.random.Generator, sizes: np.ndarray) -> np.ndarray:
    """Qiniu etags: URL-safe base64 of a prefix byte (0x16 up to 4 MiB, 0x96 above) + a SHA-1."""
    n = len(sizes)
    raw = np.empty((n, 21), dtype=np.uint8)
    raw[:, 0] = np.where(sizes <= 4 << 20, 0x16, 0x96)
    raw[:, 1:] = np.frombuffer(rng.bytes(n * 20), dtype=np.uint8).reshape(n, 20)
    g = raw.reshape(n, 7, 3).astype(np.uint32)
    v = (g[:, :, 0] << 16) | (g[:, :, 1] << 8) | g[:, :, 2]
    idx = np.stack([(v >> s) & 63 for s in (18, 12, 6, 0)], axis=2).reshape(n, 28)
    return np.frombuffer(_B64[idx].tobytes(), dtype="S28").astype("U28").astype(object)


def _pick(rng: np.random.Generator, choices: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(choices, dtype=object)[rng.integers(0, len(choices), n)]


def _iso(ns: np.ndarray, frac: bool = False) -> np.ndarray:
    secs = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ms" if frac else "s")
    return (secs.astype(object) + "Z")


# --- the rows ----------------------------------------------------------------------------------

def _clean_rows(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """``rows`` clean rows: bucket, format, every canonical field; no rule may match any of them."""
    weights = np.array([b.weight for b in BUCKETS])
    bidx = rng.choice(len(BUCKETS), size=rows, p=weights / weights.sum())
    serial = np.char.zfill(np.arange(rows).astype("U7"), 7).astype(object)
    cols: dict[str, np.ndarray] = {name: np.full(rows, None, dtype=object) for name in (
        "bucket", "account_id", "fmt", "key", "mime_type", "uploader", "title", "description", "tags", "labels")}
    cols["serial"] = serial
    size = np.zeros(rows, dtype=np.int64)
    for i, b in enumerate(BUCKETS):
        m = np.flatnonzero(bidx == i)
        n = len(m)
        if n == 0:
            continue
        pairs = [(prefix, ext) for prefix, exts in PROFILES[b.profile] for ext in exts]
        pair = rng.integers(0, len(pairs), n)
        prefix = np.array([p for p, _ in pairs], dtype=object)[pair]
        ext = np.array([e for _, e in pairs], dtype=object)[pair]
        mime, mu, sigma = (np.array([EXT[e][j] for _, e in pairs])[pair] for j in range(3))
        zh = rng.random(n) < 0.5
        stem = np.where(zh, _pick(rng, ZH_STEMS, n), _pick(rng, EN_STEMS, n))
        cols["key"][m] = prefix + "/" + stem + "_" + serial[m] + "." + ext
        cols["bucket"][m] = b.name
        cols["account_id"][m] = b.account_id
        cols["uploader"][m] = _pick(rng, b.uploaders, n)
        cols["fmt"][m] = _pick(rng, GENERIC, n) if b.fmt == "generic" else b.fmt
        cols["mime_type"][m] = mime.astype(object)
        size[m] = np.maximum(1, np.exp(rng.normal(mu.astype(float), sigma.astype(float)))).astype(np.int64)
        cols["title"][m] = np.where(zh, stem + _pick(rng, ZH_SUFFIX, n), stem)
        cols["description"][m] = _pick(rng, DESCRIPTIONS, n)
        ntags = rng.integers(0, 4, n)
        t1, t2, t3 = (_pick(rng, TAGS, n) for _ in range(3))
        cols["tags"][m] = np.select([ntags == 1, ntags == 2, ntags == 3], [t1, t1 + "," + t2, t1 + "," + t2 + "," + t3], "")
    mime = cols["mime_type"].astype(str)
    media = np.char.startswith(mime, "image/") | np.char.startswith(mime, "video/")
    # Clean objects stay clearly under the pulp rule's threshold (0.9).
    pulp = np.minimum(rng.beta(0.6, 12, rows), 0.85).round(3).astype(str).astype(object)
    terror = np.minimum(rng.beta(0.5, 20, rows), 0.5).round(3).astype(str).astype(object)
    cols["labels"] = np.asarray(np.where(media, '{"pulp": ' + pulp + ', "terror": ' + terror + "}", None), dtype=object)
    cols["size"] = size
    cols["put_ns"] = rng.integers(T_START, T_END, rows) * 1_000_000_000 + rng.integers(0, 1000, rows) * 1_000_000
    cols["storage"] = rng.choice(4, size=rows, p=[0.8, 0.12, 0.06, 0.02])
    cols["disabled"] = rng.random(rows) < 0.02
    cols["md5"] = _hex(rng, rows)
    cols["etag"] = _qetags(rng, size)
    s3 = cols["fmt"] == "s3-inventory"
    parts = np.ceil(size / (8 << 20)).astype(np.int64)
    multipart = s3 & (size > 64 << 20)
    cols["etag"][s3] = cols["md5"][s3]
    cols["etag"][multipart] = cols["md5"][multipart] + "-" + parts[multipart].astype(str).astype(object)
    return cols


def _read_hashes(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PipelineError(f"hash list not found: {path}",
                            hint="pass rules_dir pointing at a rules folder with lexicons/ (the repository's rules/)") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _plant(rng: np.random.Generator, cols: dict[str, np.ndarray], rows: int, rules_dir: Path) -> list[dict[str, Any]]:
    """Overwrite some clean rows with planted ones; return their ground truth (file filled in later)."""
    md5s = _read_hashes(rules_dir / "lexicons" / "known_bad_md5.txt")
    etags = _read_hashes(rules_dir / "lexicons" / "known_bad_etag.txt")
    hex_etags = [e for e in etags if len(e) == 32 and all(c in "0123456789abcdef" for c in e)]
    q_etags = [e for e in etags if e not in hex_etags]
    # Rows of buckets that a rule exempts only receive the plants that name them.
    exempt = np.isin(cols["bucket"], [p.bucket for p in PLANTS if p.bucket])
    pools = {f: list(rng.permutation(np.flatnonzero((cols["fmt"] == f) & ~exempt))) for f in ALL_FORMATS}
    repeats = max(1, rows // 40_000)
    truth: list[dict[str, Any]] = []
    counter = 0
    for _ in range(repeats):
        for p in PLANTS:
            for fmt in p.formats:
                if not pools[fmt]:
                    raise PipelineError(f"{rows} rows are too few to plant every case in every format",
                                        hint="use --rows 1000 or more")
                i = int(pools[fmt].pop())
                counter += 1
                key = p.key.replace("{n}", cols["serial"][i])
                if p.bucket:
                    cols["bucket"][i] = p.bucket
                    cols["account_id"][i] = BY_NAME[p.bucket].account_id
                mime, mu, sigma = EXT[key.rsplit(".", 1)[-1]]
                size = max(1, int(np.exp(rng.normal(mu, sigma))))
                cols["size"][i] = size
                cols["etag"][i] = (_hex(rng, 1)[0] if fmt == "s3-inventory"
                                   else _qetags(rng, np.array([size]))[0])
                cols["key"][i] = key
                cols["mime_type"][i] = mime
                cols["title"][i], cols["description"][i], cols["tags"][i] = p.title, p.description, p.tags
                pulp = p.pulp if p.pulp is not None else 0.02
                cols["labels"][i] = (f'{{"pulp": {pulp}, "terror": 0.01}}'
                                     if mime.startswith(("image/", "video/")) or p.pulp is not None else None)
                if p.hash == "md5":
                    cols["md5"][i] = md5s[counter % len(md5s)]
                elif p.hash == "md5-near":
                    bad = md5s[counter % len(md5s)]
                    cols["md5"][i] = bad[:-1] + ("0" if bad[-1] != "0" else "1")
                elif p.hash == "etag":
                    pool = hex_etags if fmt == "s3-inventory" else q_etags
                    cols["etag"][i] = pool[counter % len(pool)]
                truth.append({"row": i, "subject_id": f"{cols['bucket'][i]}/{key}", "rule_ids": list(p.rule_ids),
                              "kind": p.kind, "evasion": p.evasion})
    return truth


# --- writers -----------------------------------------------------------------------------------

CANONICAL = tuple(name for name in OBJECTS if name not in PROVENANCE)


def _canonical(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """The canonical columns (records.OBJECTS names) of rows ``idx``; put_time as ISO 8601 UTC."""
    out = {name: cols[name][idx] for name in CANONICAL if name not in ("put_time", "storage_class", "status")}
    out["put_time"] = _iso(cols["put_ns"][idx])
    out["storage_class"] = np.asarray(STORAGE, dtype=object)[cols["storage"][idx]]
    out["status"] = np.where(cols["disabled"][idx], "disabled", "enabled").astype(object)
    return {name: out[name] for name in CANONICAL}


def _insert(lines: list[bytes], extra: list[bytes], rng: np.random.Generator) -> None:
    """Insert ``extra`` lines at random places, never first (a header reader must see a good line)."""
    for line in extra:
        lines.insert(int(rng.integers(1, len(lines) + 1)), line)


def _table(data: dict[str, np.ndarray], put_ns: np.ndarray) -> pa.Table:
    arrays = {name: pa.array(data[name], type=pa.string(), from_pandas=True) for name in CANONICAL
              if name not in ("size", "put_time")}
    arrays["size"] = pa.array(data["size"], type=pa.int64())
    arrays["put_time"] = pa.array(put_ns // 1_000_000, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    return pa.table([arrays[n] for n in CANONICAL], names=list(CANONICAL))


def _write_csv(path: Path, data: dict[str, np.ndarray], malformed: list[bytes], rng: np.random.Generator) -> None:
    arrays = [pa.array(data[n], type=pa.int64() if n == "size" else pa.string(), from_pandas=True) for n in CANONICAL]
    buf = io.BytesIO()
    pacsv.write_csv(pa.table(arrays, names=list(CANONICAL)), buf,
                    pacsv.WriteOptions(quoting_style="needed", include_header=False))
    lines = buf.getvalue().rstrip(b"\n").split(b"\n")
    _insert(lines, malformed, rng)
    path.write_bytes(b"\n".join([",".join(CANONICAL).encode(), *lines]) + b"\n")


_jstr = np.frompyfunc(lambda v: "null" if v is None else encode_basestring(v), 1, 1)


def _json_lines(fields: dict[str, np.ndarray]) -> str:
    """JSON lines from columns of ready-encoded JSON values (built column-wise, not row by row)."""
    line: Any = None
    for name, values in fields.items():
        part = f'"{name}": ' + values
        line = "{" + part if line is None else line + ", " + part
    return "".join(line + "}\n")


def _write_jsonl(path: Path, data: dict[str, np.ndarray]) -> None:
    fields = {name: data["size"].astype(str).astype(object) if name == "size" else _jstr(data[name])
              for name in CANONICAL}
    # tags as a JSON list, labels as a JSON object: the shapes a JSONL export usually has
    tags = _jstr(data["tags"])
    fields["tags"] = np.where(np.isin(tags, ("null", '""')), "[]",
                              "[" + np.char.replace(tags.astype(str), ",", '", "').astype(object) + "]")
    fields["labels"] = np.where(data["labels"] == None, "null", data["labels"])  # noqa: E711
    path.write_text(_json_lines(fields), encoding="utf-8")


def _write_parquet(path: Path, data: dict[str, np.ndarray], put_ns: np.ndarray) -> None:
    pq.write_table(_table(data, put_ns), path, compression="zstd")


def _write_qiniu(path: Path, cols: dict[str, np.ndarray], idx: np.ndarray) -> None:
    num = {name: cols[src][idx] for name, src in (("fsize", "size"), ("type", "storage"))}
    fields = {
        "key": _jstr(cols["key"][idx]), "hash": _jstr(cols["etag"][idx]),
        "fsize": num["fsize"].astype(str).astype(object), "mimeType": _jstr(cols["mime_type"][idx]),
        "putTime": (cols["put_ns"][idx] // 100).astype(str).astype(object),
        "type": num["type"].astype(str).astype(object),
        "status": cols["disabled"][idx].astype(int).astype(str).astype(object),
        "md5": _jstr(cols["md5"][idx]), "endUser": _jstr(cols["uploader"][idx]),
    }
    path.write_text(_json_lines(fields), encoding="utf-8")


def _write_qshell(path: Path, cols: dict[str, np.ndarray], idx: np.ndarray, malformed: list[bytes],
                  rng: np.random.Generator) -> None:
    fields = (cols["key"][idx], cols["size"][idx].astype(str).astype(object), cols["etag"][idx],
              (cols["put_ns"][idx] // 100).astype(str).astype(object), cols["mime_type"][idx],
              cols["storage"][idx].astype(str).astype(object), cols["uploader"][idx])
    text = fields[0]
    for f in fields[1:]:
        text = text + "\t" + f
    lines = [t.encode() for t in text]
    _insert(lines, malformed, rng)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _write_s3(root: Path, bucket: str, cols: dict[str, np.ndarray], idx: np.ndarray,
              rng: np.random.Generator) -> list[tuple[Path, np.ndarray]]:
    """An S3 Inventory (manifest + gzip CSV data files, no header, URL-encoded keys); returns (file, rows)."""
    day = root / bucket / "inv" / INVENTORY_DATE
    (day / "data").mkdir(parents=True, exist_ok=True)
    lastmod = _iso(cols["put_ns"][idx], frac=True)
    storage = np.asarray(S3_STORAGE, dtype=object)[cols["storage"][idx]]
    lines = [f'"{bucket}","{quote_plus(k)}","","true","false","{s}","{t}","{e}","{c}"'
             for k, s, t, e, c in zip(cols["key"][idx], cols["size"][idx], lastmod, cols["etag"][idx], storage)]
    written, files = [], []
    for part, chunk in zip(np.array_split(np.arange(len(idx)), 2), (0, 1)):
        if len(part) == 0 and chunk:
            continue
        name = f"{uuid.UUID(bytes=rng.bytes(16), version=4)}.csv.gz"
        body = gzip.compress(("\n".join(lines[j] for j in part) + "\n").encode(), mtime=0)
        (day / "data" / name).write_bytes(body)
        files.append({"key": f"{bucket}/inv/{INVENTORY_DATE}/data/{name}", "size": len(body),
                      "MD5checksum": hashlib.md5(body).hexdigest()})
        written.append((day / "data" / name, idx[part]))
    manifest = {
        "sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}-inventory", "version": "2016-11-30",
        "creationTimestamp": str(int(np.datetime64("2026-11-01T00:00", "ms").astype(np.int64))),
        "fileFormat": "CSV", "fileSchema": S3_SCHEMA, "files": files,
    }
    (day / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return written


def _malformed_csv(serial: Iterator[int]) -> list[bytes]:
    """A GBK-encoded row, a truncated row and a row with a bad size."""
    good = "acct-1009,yunji-forum-uploads,{key},2048,text/plain,,,2026-10-12T08:00:00Z,u10231,STANDARD,enabled,{title},,,"
    return [
        good.format(key=f"legacy/gbk_export_{next(serial)}.txt", title="年度总结").encode("gbk"),
        f"acct-1009,yunji-forum-uploads,forum/truncated_{next(serial)}.jpg,1024".encode(),
        good.format(key=f"forum/bad_size_{next(serial)}.jpg", title="photo").replace(",2048,", ",1.2MB,").encode(),
    ]


def _malformed_qshell(serial: Iterator[int]) -> list[bytes]:
    t = "\tFto5o-5ea0sNMlW_75VgGJCv2AcJ\t17603040000000000\t"
    return [
        f"legacy/旧目录_{next(serial)}.pdf\t1024{t}application/pdf\t0\tcatalog".encode("gbk"),
        f"books/short_{next(serial)}.pdf\t2048\tFto5o-5ea0sNMlW_75VgGJCv2AcJ\t17603040000000000\tapplication/pdf".encode(),
        f"books/bad_size_{next(serial)}.pdf\tabc{t}application/pdf\t0\tcatalog".encode(),
    ]


# --- the generator -----------------------------------------------------------------------------

def generate_objects(out_dir: Path, *, rows: int, seed: int, rules_dir: Path | None = None) -> dict[str, Any]:
    """Write object metadata in every format under ``out_dir``, its ground truth and a config to scan it.

    ``out_dir/objects`` is replaced; ``config.yaml`` keeps any sections other than ``sources.objects``.
    Returns a summary: row counts, planted violations / near-misses, malformed rows, paths written.
    The result depends only on ``rows`` and ``seed`` (and the block lists in ``rules_dir``).
    """
    if rows < 1000:
        raise PipelineError(f"rows must be at least 1000, not {rows}", hint="every format needs room for its planted rows")
    out_dir = Path(out_dir)
    rules_dir = Path(rules_dir or REPO_RULES).resolve()
    rng = np.random.default_rng(seed)
    cols = _clean_rows(rng, rows)
    truth = _plant(rng, cols, rows, rules_dir)
    serial = iter(range(rows, rows + 1000))
    obj = out_dir / "objects"
    # A previous run's files (S3 data files are named by random UUIDs) would be scanned too.
    shutil.rmtree(obj, ignore_errors=True)
    for sub in ("qiniu", "qshell", "s3"):
        (obj / sub).mkdir(parents=True, exist_ok=True)

    file_of = np.full(rows, None, dtype=object)
    sources: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    malformed: dict[str, int] = {}

    def record(path: Path, idx: np.ndarray) -> str:
        rel = path.relative_to(out_dir).as_posix()
        file_of[idx] = rel
        counts[rel] = len(idx)
        return rel

    for fmt in GENERIC:
        idx = np.flatnonzero(cols["fmt"] == fmt)
        path = obj / f"generic.{fmt}"
        data = _canonical(cols, idx)
        if fmt == "csv":
            bad = _malformed_csv(serial)
            _write_csv(path, data, bad, rng)
            malformed[path.relative_to(out_dir).as_posix()] = len(bad)
        elif fmt == "jsonl":
            _write_jsonl(path, data)
        else:
            _write_parquet(path, data, cols["put_ns"][idx])
        sources.append({"path": record(path, idx), "format": fmt})

    first_qshell = True
    for b in BUCKETS:
        idx = np.flatnonzero((cols["bucket"] == b.name) & (cols["fmt"] == b.fmt))
        idx = idx[np.argsort(cols["key"][idx].astype(str), kind="stable")]   # listings come in key order
        if b.fmt == "qiniu-json":
            path = obj / "qiniu" / f"{b.name}.json"
            _write_qiniu(path, cols, idx)
        elif b.fmt == "qshell":
            path = obj / "qshell" / f"{b.name}.txt"
            bad = _malformed_qshell(serial) if first_qshell else []
            _write_qshell(path, cols, idx, bad, rng)
            if first_qshell:
                malformed[path.relative_to(out_dir).as_posix()] = len(bad)
                first_qshell = False
        elif b.fmt == "s3-inventory":
            for path, part in _write_s3(obj / "s3", b.name, cols, idx, rng):
                record(path, part)
            data_dir = (obj / "s3" / b.name / "inv" / INVENTORY_DATE / "data").relative_to(out_dir).as_posix()
            sources.append({"path": data_dir, "format": "s3-inventory", "bucket": b.name, "account_id": b.account_id})
            continue
        else:
            continue
        sources.append({"path": record(path, idx), "format": b.fmt, "bucket": b.name, "account_id": b.account_id})

    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    for t in truth:
        t["file"] = file_of[t.pop("row")]
    truth.sort(key=lambda t: (t["file"], t["subject_id"]))
    (truth_dir / "objects.jsonl").write_text(
        "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth), encoding="utf-8")
    (truth_dir / "objects_malformed.json").write_text(json.dumps(malformed, indent=2) + "\n", encoding="utf-8")
    config_path = _write_config(out_dir, rules_dir, sources)
    violations = sum(t["kind"] == "violation" for t in truth)
    return {
        "rows": rows, "violations": violations, "near_misses": len(truth) - violations,
        "malformed": sum(malformed.values()), "config": str(config_path), "truth": str(truth_dir / "objects.jsonl"),
        "files": counts, "malformed_by_file": malformed,
    }


def _write_config(out_dir: Path, rules_dir: Path, objects: list[dict[str, str]]) -> Path:
    """config.yaml for the generated data; sections other than sources.objects are kept if it exists."""
    path = out_dir / "config.yaml"
    config: dict[str, Any] = {}
    if path.exists():
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config["rules"] = str(rules_dir)
    config.setdefault("state_dir", "state")
    config.setdefault("sources", {})["objects"] = objects
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.generate.objects", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--rows", type=int, default=2000, help="object rows (at least 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules-dir", type=Path, default=None, help="rules folder the config points at")
    args = parser.parse_args(argv)
    try:
        summary = generate_objects(args.out, rows=args.rows, seed=args.seed, rules_dir=args.rules_dir)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
