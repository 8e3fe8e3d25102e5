"""Violation notices (违规信息处理通知): rendered in Chinese from a string.Template file, citing the
case's clause, §3.1.3.10 and §7.3.2, the deadline, the subject and a summary of the evidence."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import Settings
from ..display import shown
from ..errors import Location
from . import EnforcementError
from .policy import NOT_ENFORCED, decide, intended_actions

PRODUCT_ZH = {"object_storage": "对象存储", "cdn": "CDN", "live_streaming": "直播云", "account": "码尚云"}
SUBJECT_ZH = {"object": "文件", "bucket": "存储空间", "domain": "域名", "url": "链接", "stream": "直播流",
              "hub": "直播空间", "account": "账号", "client_ip": "IP 地址"}
ACTION_ZH = {"disable_object": "封禁资源", "freeze_bucket": "冻结空间", "freeze_account": "冻结账号",
             "block_url": "封禁外链", "freeze_domain": "冻结域名", "disable_stream": "封禁房间",
             "freeze_hub": "冻结直播空间"}
# category name prefixes → Chinese, longest prefix first wins
CATEGORY_ZH = {
    "contraband_gambling": "赌博、博彩", "contraband_game_cheat": "私服、外挂", "contraband_drugs": "毒品",
    "contraband_weapons": "枪支弹药、管制器具", "contraband": "违禁品", "pornographic": "色情低俗",
    "inappropriate_superstition": "封建迷信", "inappropriate": "不良信息", "political": "违规政治信息",
    "attack_malware": "病毒、木马、恶意代码", "attack_phishing": "钓鱼、网络诈骗", "attack": "危害网络安全的行为",
    "abuse_bandwidth": "占用大量带宽资源", "abuse_traffic_spike": "异常流量", "abuse": "滥用资源",
    "licence_missing": "缺少经营许可", "filing_missing": "未备案", "spam": "垃圾信息",
    "filing_limited": "备案被限制接入或已注销", "filing_entity_mismatch": "备案主体与实名认证主体不一致",
    "filing_declared_mismatch": "申报的备案号有误或不属于该域名", "filing": "备案问题",
}
TZ_CN = timezone(timedelta(hours=8))


def category_zh(category: str) -> str:
    for prefix in sorted(CATEGORY_ZH, key=len, reverse=True):
        if category == prefix or category.startswith(prefix + "_"):
            return CATEGORY_ZH[prefix]
    return category


def template_text(settings: Settings) -> tuple[str, str]:
    """(template text, where it came from) — the configured file or the packaged one."""
    configured = settings.enforcement.notice.template
    if configured:
        path = settings.resolve(configured)
        try:
            return Path(path).read_text(encoding="utf-8"), path
        except OSError as exc:
            raise EnforcementError(f"cannot read the notice template: {exc.strerror}", location=Location(path),
                                   hint="fix enforcement.notice.template in the config") from None
    res = resources.files("pipeline").joinpath("templates/notice.zh.txt")
    return res.read_text(encoding="utf-8"), "pipeline/templates/notice.zh.txt"


def _local(ts: str | None) -> str:
    """An ISO time as Beijing time, the way a customer in China reads it."""
    if not ts:
        return "-"
    t = datetime.fromisoformat(ts)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(TZ_CN).strftime("%Y年%m月%d日 %H:%M（北京时间）")


def _law_text(law: Any) -> str:
    """"互联网信息服务管理办法 第十五条" → "，并违反《互联网信息服务管理办法》第十五条的规定"."""
    if not isinstance(law, str) or not law.strip():
        return ""
    name, _, article = law.strip().partition(" ")
    return f"，并违反《{name.strip('《》')}》{article.strip()}的规定"


def evidence_summary(evidence: Any, limit: int = 5) -> str:
    items = json.loads(evidence) if isinstance(evidence, str) else evidence
    lines = []
    for item in items[:limit]:
        where = shown(item.get("source_file") or "")
        if item.get("source_line") is not None:
            where += f" 第 {item['source_line']} 行"
        for m in item.get("matches", [])[:3]:
            lines.append(f"    - {m.get('field')}：“{shown(str(m.get('text'))[:80])}”（{m.get('kind')}：{m.get('pattern')}）"
                         f"{'，' + where.split('/')[-1] if where else ''}")
    if len(items) > limit:
        lines.append(f"    - 另有 {len(items) - limit} 条证据")
    return "\n".join(lines) or "    - （无）"


def default_deadline(settings: Settings, case: dict[str, Any], now: datetime | None = None) -> str:
    decision = decide(settings.enforcement, case["category"], case["severity"])
    days = decision.notice_days if decision else settings.enforcement.notice_days
    return ((now or datetime.now(timezone.utc)) + timedelta(days=days)).isoformat(timespec="seconds")


# The measure sentence of custom templates written before $measure_text existed: it speaks of a
# measure still to come, so it is replaced by $measure_text, which also says when the measure was
# already taken. The packaged template uses $measure_text.
PENDING_MEASURE = "逾期未整改的，我们将对 $target 采取以下措施：$measure_zh。"


def check_noticeable(case: Mapping[str, Any]) -> None:
    """Refuse a notice for a case that is never held against a customer (e.g. a client IP
    attacking the customer's site: the customer is the victim)."""
    why = NOT_ENFORCED.get(str(case["subject_type"]))
    if why is not None:
        raise EnforcementError(
            f"case {case['case_id']} is not held against a customer, so it gets no violation notice: {why}",
            hint="enforcement plans skip such cases for the same reason; `compliance cases show "
                 f"{case['case_id']}` shows the evidence")


def _measure_text(target: str, measure: str, taken: Sequence[Mapping[str, Any]]) -> str:
    """The sentence naming the measure: still to come, already decided (queued), or already taken."""
    if not taken:
        return f"逾期未整改的，我们将对 {target} 采取以下措施：{measure}。"
    done = [t for t in taken if t.get("status") == "delivered"]
    names = "、".join(dict.fromkeys(ACTION_ZH.get(t["action"], t["action"]) for t in (done or taken)))
    where = shown("、".join(dict.fromkeys(str(t["target"]) for t in (done or taken))))
    if done:
        when = max(str(t.get("delivered_at") or "") for t in done)
        return f"我们已于 {_local(when)} 对 {where} 采取以下措施：{names}，该措施已经生效。"
    return f"我们已决定对 {where} 采取以下措施：{names}，该措施即将生效。"


def render_notice(settings: Settings, case: dict[str, Any], deadline: str, now: datetime | None = None,
                  taken: Sequence[Mapping[str, Any]] = ()) -> str:
    """The notice for ``case`` (a store row, evidence as list or JSON) with ``deadline`` (ISO, UTC).

    ``taken``: the case's enforcement actions already delivered or queued (rows with ``action``,
    ``target``, ``status``, ``delivered_at``); the notice then says the measure was taken rather
    than threatening it."""
    check_noticeable(case)
    text, origin = template_text(settings)
    decision = decide(settings.enforcement, case["category"], case["severity"])
    intended, _ = intended_actions(case, decision.level) if decision else ([], None)
    measure = "、".join(dict.fromkeys(ACTION_ZH.get(i.action, i.action) for i in intended)) or "依协议处理"
    target = shown("、".join(dict.fromkeys(i.target for i in intended)) or str(case["subject_id"]))
    product = intended[0].product if intended else "account"
    if "measure_text" not in text:
        text = text.replace(PENDING_MEASURE, "$measure_text")
    values = {
        "case_id": case["case_id"], "account": case.get("account_id") or "-",
        "provider": settings.enforcement.notice.provider, "appeal": settings.enforcement.notice.appeal,
        "product_zh": PRODUCT_ZH.get(product, product), "clause": case["clause"],
        "law_text": _law_text(case.get("law")),
        "category": case["category"], "category_zh": category_zh(case["category"]),
        "subject": case["subject_id"], "subject_zh": SUBJECT_ZH.get(case["subject_type"], case["subject_type"]),
        "first_seen": _local(case.get("first_event") or case.get("first_seen")),
        "last_seen": _local(case.get("last_event") or case.get("last_seen")),
        "hit_count": case.get("hit_count", 0), "rule_title": case.get("rule_title") or "", "rule_id": case["rule_id"],
        "evidence": evidence_summary(case["evidence"]), "deadline": _local(deadline),
        "target": target, "measure_zh": measure, "measure_text": _measure_text(target, measure, taken),
        "date": (now or datetime.now(timezone.utc)).astimezone(TZ_CN).strftime("%Y年%m月%d日"),
    }
    # customer-supplied text (keys, evidence) must not forge lines of the notice: escaped, except the
    # two values whose line breaks are ours (their customer parts are escaped where they are built)
    values = {k: shown(v) if isinstance(v, str) and k not in ("evidence", "measure_text") else v
              for k, v in values.items()}
    try:
        return string.Template(text).substitute(values)
    except (KeyError, ValueError) as exc:
        known = ", ".join(sorted(values))
        raise EnforcementError(f"notice template uses an unknown or malformed placeholder: {exc}",
                               location=Location(origin), hint=f"placeholders available: {known}") from None
