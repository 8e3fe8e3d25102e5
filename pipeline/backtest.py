"""Backtests: a draft rule file or folder against the live rules, over data already scanned or a
window of retained logs, evaluated in memory so the live case store is never written.

Both rule sets run in one pass over the data: each rule is renamed ``live:<id>`` or ``draft:<id>``
inside one merged rule set, so every file is read and normalized once and the two sides see exactly
the same records. The difference is taken per case (rule id, subject type, subject id): cases the
draft would open, cases it would no longer find, and cases both keep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import yaml

from .cases.ids import case_id
from .cases.store import open_store
from .config import Settings
from .errors import PipelineError
from .matchers import aggregate
from .matchers.hits import empty_hits, record_hits
from .query.request import TimeLike, instant
from .records import LOGS, conform
from .retention.layout import IP_KEY, partitions_between
from .rules.loader import load_rules
from .rules.model import Rule, RuleSet
from .runner import (FileResult, ScanContext, aggregate_hits, compiled_for, plan_tasks, run_tasks, scan_context,
                     scan_file)

LIVE, DRAFT = "live", "draft"
CHANGES = ("opens", "closes", "kept")
DIFF_COLUMNS = ["change", "rule_id", "subject_type", "subject_id", "case_id", "account_id", "hits_live",
                "hits_draft", "first_event", "last_event", "sample", "live_status"]
PER_RULE_COLUMNS = ["rule_id", "rule_change", "live_cases", "draft_cases", "opens", "closes", "kept"]


class BacktestError(PipelineError):
    """A backtest cannot run as asked (no data, a bad window, an unknown baseline)."""


@dataclass(frozen=True)
class BacktestResult:
    """What a draft would change. ``diff``: one row per case either side holds (DIFF_COLUMNS);
    ``per_rule``: one row per rule in scope (PER_RULE_COLUMNS)."""

    diff: pd.DataFrame
    per_rule: pd.DataFrame
    draft: str
    against: str
    data: str                 # what was read: "configured sources" or "retained logs <from> .. <to>"
    files: int
    rows: int

    @property
    def opens(self) -> pd.DataFrame:
        """Cases the draft would open that the live rules do not find."""
        return self.diff[self.diff["change"] == "opens"].reset_index(drop=True)

    @property
    def closes(self) -> pd.DataFrame:
        """Cases the live rules find that the draft would no longer find."""
        return self.diff[self.diff["change"] == "closes"].reset_index(drop=True)

    def summary(self) -> str:
        changed = self.per_rule[self.per_rule["rule_change"] != "unchanged"]
        return (f"backtest of {self.draft} against {self.against} over {self.data} ({self.files} file(s), "
                f"{self.rows} rows): {len(self.opens)} case(s) would open, {len(self.closes)} would no longer "
                f"be found, {int((self.diff['change'] == 'kept').sum())} kept; "
                f"{len(changed)} of {len(self.per_rule)} rule(s) in scope differ")


# -- rule sets -------------------------------------------------------------------------------------

def _load(path: str, settings: Settings, list_dirs: tuple[str, ...]) -> RuleSet:
    """The rules at ``path``: the configured rules folder comes with the configured Sigma folders; a
    Sigma file or folder given as a draft is read as Sigma."""
    from .rules.sigma import is_sigma
    from .rules.sigma.load import sigma_files

    if os.path.realpath(path) == os.path.realpath(settings.rules_dir):
        return load_rules(path, list_dirs, sigma_folders=settings.sigma_folders, sigma=settings.sigma)
    for f in sigma_files((path,))[:200]:
        try:
            first = next((d for d in yaml.compose_all(Path(f).read_text(encoding="utf-8")) if d is not None), None)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue   # the loader reports it with its place
        if is_sigma(first):   # every file under the draft is then read as Sigma
            return load_rules(path, list_dirs, sigma_folders=(path,), sigma=settings.sigma)
    return load_rules(path, list_dirs)


def _scope(draft: RuleSet, live: RuleSet, draft_is_file: bool) -> list[str]:
    """Rule ids compared. A single draft file replaces only the rules it defines; a folder replaces
    the whole live folder, so rules missing from it count as removed."""
    ids = [r.id for r in draft.rules]
    if not draft_is_file:
        ids += [r.id for r in live.rules if r.id not in set(ids)]
    return ids


def _tagged(rule: Rule, side: str) -> Rule:
    return dataclasses.replace(rule, id=f"{side}:{rule.id}")


def merged_ruleset(draft: RuleSet, live: RuleSet, scope: list[str]) -> RuleSet:
    """One rule set holding both sides' rules in scope, each id prefixed with its side."""
    wanted = set(scope)
    rules = tuple([_tagged(r, LIVE) for r in live.rules if r.id in wanted]
                  + [_tagged(r, DRAFT) for r in draft.rules if r.id in wanted])
    digest = hashlib.sha256(("backtest;" + "".join(f"{r.id}={r.content_hash};" for r in rules)).encode()).hexdigest()
    return RuleSet(rules, digest)


def rule_changes(draft: RuleSet, live: RuleSet, scope: list[str]) -> dict[str, str]:
    """added | removed | changed | unchanged, per rule id in scope."""
    d = {r.id: r for r in draft.rules}
    lv = {r.id: r for r in live.rules}
    out: dict[str, str] = {}
    for rid in scope:
        if rid not in lv:
            out[rid] = "added"
        elif rid not in d:
            out[rid] = "removed"
        elif d[rid].content_hash != lv[rid].content_hash or d[rid].enabled != lv[rid].enabled:
            out[rid] = "changed"
        else:
            out[rid] = "unchanged"
    return out


# -- evaluation ------------------------------------------------------------------------------------

@dataclass
class _Collected:
    hits: list[pd.DataFrame]
    partials: dict[str, list[pd.DataFrame]]
    files: int = 0
    rows: int = 0

    def add(self, res: FileResult) -> None:
        self.files += 1
        self.rows += res.rows_parsed
        if len(res.hits):
            self.hits.append(res.hits)
        for rule_id, part in res.partials.items():
            if len(part):
                self.partials.setdefault(rule_id, []).append(part)

    def all_hits(self, ruleset: RuleSet, ctx: ScanContext) -> pd.DataFrame:
        frames = list(self.hits)
        for rule_id, parts in self.partials.items():
            agg = aggregate_hits(ruleset.by_id(rule_id), pd.concat(parts, ignore_index=True))
            is_domain = agg["subject_type"] == "domain"
            agg.loc[is_domain, "account_id"] = [ctx.domain_owner.get(str(d).lower(), "")
                                                for d in agg.loc[is_domain, "subject_id"]]
            frames.append(agg)
        return pd.concat(frames, ignore_index=True) if frames else empty_hits()


def _evaluate_sources(settings: Settings, ctx: ScanContext, client: Any) -> _Collected:
    """The configured sources, as `compliance scan` reads them: on a Dask client if given, else here."""
    tasks = [t for t in plan_tasks(settings) if ctx.ruleset.for_source(t.source)]
    out = _Collected([], {})
    results: Iterator[FileResult] = (run_tasks(client, tasks, ctx, settings) if client is not None and tasks
                                     else (scan_file(t, ctx) for t in tasks))
    for res in results:
        out.add(res)
    return out


def _day_bounds(start: datetime | None, end: datetime | None) -> tuple[date | None, date | None]:
    return (start.date() if start else None,
            (end - timedelta(microseconds=1)).date() if end else None)


def _evaluate_retained(settings: Settings, ctx: ScanContext, start: datetime | None,
                       end: datetime | None) -> _Collected:
    """Log rules over the retained store's partitions in [start, end), one day at a time."""
    compiled = compiled_for(ctx.ruleset, "logs", ctx.keyword_backend)
    out = _Collected([], {})
    first, last = _day_bounds(start, end)
    for part in partitions_between(settings, first, last):
        filters: list[tuple[str, str, Any]] = []
        if start is not None:
            filters.append(("ts", ">=", start))
        if end is not None:
            filters.append(("ts", "<", end))
        table = pq.read_table([str(f) for f in part.files], filters=filters or None)
        if IP_KEY in table.column_names:
            table = table.drop_columns([IP_KEY])
        records = conform(table.to_pandas(), LOGS)
        hits = record_hits(compiled, records) if compiled.rules else empty_hits()
        parts = {rule.id: aggregate.partials(rule, records, compiled.match_mask(rule, records))
                 for rule in compiled.rules if rule.aggregate is not None}
        out.files += len(part.files)
        out.rows += len(records)
        if len(hits):
            out.hits.append(hits)
        for rule_id, p in parts.items():
            if len(p):
                out.partials.setdefault(rule_id, []).append(p)
    return out


# -- hits → cases → difference ----------------------------------------------------------------------

def _first_text(evidence: Any) -> str:
    try:
        items = json.loads(evidence) if isinstance(evidence, str) else evidence
        return str(items[0].get("text", "")) if items else ""
    except (ValueError, TypeError, AttributeError, IndexError):
        return ""


def cases_from_hits(hits: pd.DataFrame) -> pd.DataFrame:
    """One row per (side, rule, subject): what a scan would fold the hits into."""
    cols = ["side", "rule_id", "subject_type", "subject_id", "case_id", "account_id", "hits", "first_event",
            "last_event", "sample"]
    if hits.empty:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in cols})
    h = hits.copy()
    split = h["rule_id"].astype(str).str.split(":", n=1, expand=True)
    h["side"], h["rule_id"] = split[0], split[1]
    h["event_time"] = pd.to_datetime(h["event_time"], utc=True)
    h["account_id"] = h["account_id"].replace("", pd.NA)
    keys = ["side", "rule_id", "subject_type", "subject_id"]
    h = h.sort_values([*keys, "event_time", "hit_key"], kind="stable")
    g = h.groupby(keys, sort=True, dropna=False)
    cases = g.agg(hits=("hit_key", "nunique"), first_event=("event_time", "min"), last_event=("event_time", "max"),
                  account_id=("account_id", "first"), evidence=("evidence", "first")).reset_index()
    cases["sample"] = [_first_text(e) for e in cases.pop("evidence")]
    cases["case_id"] = [case_id(r, t, s) for r, t, s in
                        zip(cases["rule_id"], cases["subject_type"], cases["subject_id"])]
    return cases[cols]


def difference(cases: pd.DataFrame, live_status: dict[str, str] | None = None) -> pd.DataFrame:
    """Per case: opens (draft only), closes (live only) or kept (both), with both sides' hit counts."""
    keys = ["rule_id", "subject_type", "subject_id", "case_id"]
    live = cases[cases["side"] == LIVE].drop(columns="side")
    draft = cases[cases["side"] == DRAFT].drop(columns="side")
    both = live.merge(draft, on=keys, how="outer", suffixes=("_live", "_draft"), indicator=True)
    if both.empty:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in DIFF_COLUMNS})
    both["change"] = both["_merge"].map({"right_only": "opens", "left_only": "closes", "both": "kept"}).astype(str)
    pick = {"account_id": "account_id", "first_event": "first_event", "last_event": "last_event", "sample": "sample"}
    for out, col in pick.items():
        # the draft's view where it has the case, else the live one
        both[out] = both[f"{col}_draft"].where(both["_merge"] != "left_only", both[f"{col}_live"])
    both["hits_live"] = both["hits_live"].fillna(0).astype(int)
    both["hits_draft"] = both["hits_draft"].fillna(0).astype(int)
    both["live_status"] = both["case_id"].map(live_status or {})
    order = {c: i for i, c in enumerate(CHANGES)}
    both = both.sort_values(["change", "rule_id", "subject_type", "subject_id"],
                            key=lambda s: s.map(order) if s.name == "change" else s, kind="stable")
    return both[DIFF_COLUMNS].reset_index(drop=True)


def per_rule(diff: pd.DataFrame, changes: dict[str, str]) -> pd.DataFrame:
    rows = []
    for rid, change in changes.items():
        d = diff[diff["rule_id"] == rid]
        counts = d["change"].value_counts()
        rows.append({"rule_id": rid, "rule_change": change,
                     "live_cases": int(counts.get("closes", 0) + counts.get("kept", 0)),
                     "draft_cases": int(counts.get("opens", 0) + counts.get("kept", 0)),
                     "opens": int(counts.get("opens", 0)), "closes": int(counts.get("closes", 0)),
                     "kept": int(counts.get("kept", 0))})
    return pd.DataFrame(rows, columns=PER_RULE_COLUMNS)


def live_statuses(settings: Settings) -> dict[str, str]:
    """case id → status in the live case store, read only; empty when no store exists yet
    (opening a missing SQLite store would create it, and a backtest must not write anything)."""
    if settings.case_store is None and not (settings.state_path / "cases.db").exists():
        return {}
    store = open_store(settings.state_path, settings.case_store)
    try:
        df = store.list_cases()
    finally:
        store.close()
    return dict(zip(df["case_id"], df["status"]))


# -- entry point -----------------------------------------------------------------------------------

def backtest(settings: Settings, draft: str | Path, *, against: str | Path | None = None,
             start: TimeLike = None, end: TimeLike = None, client: Any = None) -> BacktestResult:
    """Compare ``draft`` (a rule file or folder) with ``against`` (default: the configured rules).

    Without a window the configured sources are read, as a scan would read them. With ``start`` or
    ``end`` (start inclusive, end exclusive; ISO-8601, naive times are UTC) the retained log store is
    read over that window instead, and only log rules are compared. Nothing is written anywhere.
    """
    draft_path = str(draft)
    against_path = settings.rules_dir if against in (None, "live") else str(against)
    if not os.path.exists(draft_path):
        raise BacktestError(f"no rule file or folder at {draft_path}",
                            hint="pass a draft rule file (.yaml) or a copy of the rules folder with your change")
    list_dirs = (settings.rules_dir, *settings.rule_list_paths)   # drafts may use the configured lexicons
    draft_rules = _load(draft_path, settings, list_dirs)
    live_rules = _load(against_path, settings, list_dirs)
    scope = _scope(draft_rules, live_rules, os.path.isfile(draft_path))
    if not scope:
        raise BacktestError(f"{draft_path} defines no rules", hint="a rule file holds a list under 'rules:'")
    t0, t1 = instant(start, "--from"), instant(end, "--to")
    retained = t0 is not None or t1 is not None
    if retained:
        # the retained store holds access logs only: other sources' rules cannot be compared there
        logs = {r.id for r in (*draft_rules.rules, *live_rules.rules) if "logs" in r.sources}
        scope = [rid for rid in scope if rid in logs]
        if not scope:
            raise BacktestError(f"{draft_path} holds no log rule, and the retained store holds only access logs",
                                hint="drop --from / --to to backtest over the configured sources")
    merged = merged_ruleset(draft_rules, live_rules, scope)
    ctx = scan_context(settings, merged)
    if t0 is not None and t1 is not None and t0 >= t1:
        raise BacktestError(f"the window is empty: --from {t0.isoformat()} is not before --to {t1.isoformat()}",
                            hint="--to is exclusive; give a later --to")
    if not retained:
        collected = _evaluate_sources(settings, ctx, client)
        data = "configured sources"
    else:
        collected = _evaluate_retained(settings, ctx, t0, t1)
        data = f"retained logs {t0.isoformat() if t0 else '…'} .. {t1.isoformat() if t1 else '…'}"
        if collected.files == 0:
            raise BacktestError(f"no retained log partition lies in {data}",
                                hint="ingest logs with `compliance logs ingest`, or widen --from / --to")
    cases = cases_from_hits(collected.all_hits(merged, ctx))
    diff = difference(cases, live_statuses(settings))
    return BacktestResult(diff, per_rule(diff, rule_changes(draft_rules, live_rules, scope)), draft_path,
                          "live rules" if against in (None, "live") else against_path, data,
                          collected.files, collected.rows)


__all__ = ["BacktestError", "BacktestResult", "backtest", "cases_from_hits", "difference", "merged_ruleset",
           "rule_changes", "live_statuses"]
