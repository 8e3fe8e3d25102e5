"""The analysts' API: cases, evidence, scan runs, hit statistics, regulators' queries and rule
backtests as pandas DataFrames, plus a few matplotlib plots. What notebooks use, instead of the
source adapters or the case store directly.

    from pipeline import api
    an = api.connect()                 # finds config.yaml from the working folder upwards
    an.cases(category="contraband_gambling", status="open")
    an.evidence(case_id)
    an.hits_per_pattern("objects.gambling.promotion")
    an.backtest("drafts/gambling.yaml")

Everything here reads; the writers are ``scan`` / ``ensure_scanned`` (a scan, as `compliance scan`),
``ingest_configured_logs`` (as `compliance logs ingest`) and ``query_logs``, which exports and is
audited exactly as `compliance logs query`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from loguru import logger

from .backtest import BacktestResult, backtest as _backtest
from .cases.store import CaseStore, open_store
from .config import ENV_PREFIX, Settings, load_settings
from .errors import ConfigError, QueryError, StoreError
from .query import QueryResult, run_query
from .query.request import TimeLike, instant

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CONFIG_NAME = "config.yaml"
# run statuses of a scan that finished: with errors, some file was quarantined and is retried next time
COMPLETED = ("completed", "completed_with_errors")
TIME_COLUMNS = ("first_seen", "last_seen", "first_event", "last_event", "updated_at", "started_at",
                "finished_at", "at", "event_time")
SEVERITY_ORDER = ("critical", "high", "medium", "low")
MATCH_COLUMNS = ["case_id", "rule_id", "status", "account_id", "subject_id", "hit_key", "source_file", "source_line",
                 "event_time", "field", "kind", "pattern", "text", "normalized"]


def find_config(start: str | Path | None = None) -> Path:
    """$COMPLIANCE_CONFIG, else the nearest config.yaml in ``start`` (default: the working folder)
    or any folder above it, so a notebook under notebooks/ finds the repository's config."""
    env = os.environ.get(ENV_PREFIX + "CONFIG")
    if env:
        return Path(env)
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no {CONFIG_NAME} in {here} or any folder above it",
                      hint="run from the project folder, pass connect(config_path=...), or set COMPLIANCE_CONFIG")


def connect(config_path: str | Path | None = None) -> Analyst:
    """An Analyst over the deployment named by ``config_path`` (default: see ``find_config``).
    Environment overrides apply as for the CLI (COMPLIANCE_STATE_DIR points at another state folder)."""
    path = Path(config_path) if config_path is not None else find_config()
    return Analyst(load_settings(str(path)), str(path))


def _times(df: pd.DataFrame) -> pd.DataFrame:
    """ISO text columns from the store as UTC datetimes (the store keeps text for portability)."""
    for col in TIME_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601", errors="coerce")
    return df


@dataclass(frozen=True)
class Analyst:
    """Read access to one deployment's cases, runs and retained logs. Each call opens the case
    store and closes it again, so an idle notebook holds no connection or lock."""

    settings: Settings
    config_path: str | None = None

    # -- the case store ------------------------------------------------------------------------

    def _store(self) -> CaseStore:
        return open_store(self.settings.state_path, self.settings.case_store)

    def _store_exists(self) -> bool:
        return self.settings.case_store is not None or (self.settings.state_path / "cases.db").exists()

    def has_scan(self) -> bool:
        """True once a scan has completed into this deployment's case store (with errors too: the
        files it could not read are retried by the next scan, its cases stand)."""
        if not self._store_exists():
            return False
        runs = self.runs()
        return bool(runs["status"].isin(COMPLETED).any()) if len(runs) else False

    def scan(self, client: Any = None) -> dict[str, Any]:
        """Run a scan, as `compliance scan` does (``client``: an existing Dask client to use)."""
        from .runner import scan

        report = scan(self.settings, config_path=self.config_path, client=client).as_dict()
        if report.get("files_quarantined"):
            logger.warning("scan {} completed with errors: {} file(s) quarantined and retried by the next scan "
                           "(see its files_quarantined)", report["run_id"], len(report["files_quarantined"]))
        return report

    def ensure_scanned(self, client: Any = None) -> bool:
        """Scan unless a completed scan exists already; True when it scanned."""
        if self.has_scan():
            return False
        self.scan(client)
        return True

    def _raw_cases(self, **filters: str | None) -> pd.DataFrame:
        store = self._store()
        try:
            return store.list_cases(**filters)
        finally:
            store.close()

    def cases(self, *, status: str | None = None, category: str | None = None, severity: str | None = None,
              account: str | None = None, rule: str | None = None, subject_type: str | None = None,
              since: TimeLike = None, until: TimeLike = None) -> pd.DataFrame:
        """Cases, most severe first. ``since`` / ``until`` bound the first event of the case
        (inclusive / exclusive; ISO-8601, naive times are UTC). The evidence column is left out:
        see ``evidence(case_id)`` and ``matches()``."""
        df = _times(self._raw_cases(status=status, category=category, severity=severity, account=account,
                                    rule=rule, subject_type=subject_type)).drop(columns=["evidence"], errors="ignore")
        lo, hi = instant(since, "since"), instant(until, "until")
        if lo is not None:
            df = df[df["first_event"] >= pd.Timestamp(lo)]
        if hi is not None:
            df = df[df["first_event"] < pd.Timestamp(hi)]
        return df.reset_index(drop=True)

    def case(self, case_id: str) -> dict[str, Any]:
        """One case as stored, with its evidence list, run ids and history."""
        store = self._store()
        try:
            return store.get_case(case_id)
        finally:
            store.close()

    def evidence(self, case_id: str) -> pd.DataFrame:
        """A case's evidence, one row per match: where (file and line, or object key), when, which
        field, which pattern, the original text and its normalized form."""
        case = self.case(case_id)
        return _times(pd.DataFrame(_flatten(case), columns=MATCH_COLUMNS)).drop(
            columns=["case_id", "rule_id", "status", "account_id", "subject_id"])

    def history(self, case_id: str) -> pd.DataFrame:
        """Every recorded step of a case: when, who, what, from which status to which, and why."""
        cols = ["at", "actor", "action", "from_status", "to_status", "reason", "run_id"]
        return _times(pd.DataFrame(self.case(case_id)["history"], columns=cols))

    def runs(self) -> pd.DataFrame:
        """Scan runs with their counts (files, rows read / parsed / quarantined, hits, cases) and duration."""
        store = self._store()
        try:
            df = _times(store.runs())
        finally:
            store.close()
        df["duration_s"] = (df["finished_at"] - df["started_at"]).dt.total_seconds()
        return df

    # -- hit statistics --------------------------------------------------------------------------

    def hits_per_rule(self) -> pd.DataFrame:
        """Per rule: cases, hits, accounts, cases per status, and the first and last event."""
        df = self.cases()
        cols = ["rule_id", "category", "severity", "cases", "hits", "accounts", "first_event", "last_event"]
        if df.empty:
            return pd.DataFrame(columns=cols)
        out = df.groupby(["rule_id", "category", "severity"], sort=False).agg(
            cases=("case_id", "size"), hits=("hit_count", "sum"), accounts=("account_id", "nunique"),
            first_event=("first_event", "min"), last_event=("last_event", "max")).reset_index()
        status = pd.crosstab(df["rule_id"], df["status"])
        out = out.merge(status, left_on="rule_id", right_index=True, how="left")
        return out.sort_values(["hits", "rule_id"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def matches(self, rule_id: str | None = None) -> pd.DataFrame:
        """Every match in every case's evidence (``rule_id``: one rule's), with the case's status.
        Evidence is a bounded sample per case (scan.max_evidence), so counts here are lower bounds."""
        rows: list[dict[str, Any]] = []
        for case in self._raw_cases(rule=rule_id).to_dict("records"):
            case["evidence"] = json.loads(case["evidence"]) if isinstance(case["evidence"], str) else case["evidence"]
            rows.extend(_flatten(case))
        return _times(pd.DataFrame(rows, columns=MATCH_COLUMNS))

    def hits_per_pattern(self, rule_id: str | None = None) -> pd.DataFrame:
        """Per (rule, kind, pattern): matches, cases, dismissed cases and their share, distinct matched
        texts and a few examples. A pattern whose cases reviewers keep dismissing, or which matches
        many different texts, is where false positives come from."""
        m = self.matches(rule_id)
        cols = ["rule_id", "kind", "pattern", "matches", "cases", "dismissed", "dismissed_share", "distinct_texts",
                "examples"]
        if m.empty:
            return pd.DataFrame(columns=cols)
        m["dismissed_case"] = m["case_id"].where(m["status"] == "dismissed")
        out = m.groupby(["rule_id", "kind", "pattern"], sort=False).agg(
            matches=("case_id", "size"), cases=("case_id", "nunique"), dismissed=("dismissed_case", "nunique"),
            distinct_texts=("text", "nunique"),
            examples=("text", lambda s: list(dict.fromkeys(s.astype(str)))[:3])).reset_index()
        out["dismissed_share"] = out["dismissed"] / out["cases"]
        return out[cols].sort_values(["matches", "rule_id", "pattern"], ascending=[False, True, True],
                                     kind="stable").reset_index(drop=True)

    # -- retained logs and regulators' queries -----------------------------------------------------

    def retained_days(self) -> list[date]:
        """Days the retained log store holds."""
        from .retention import published_days

        return published_days(self.settings)

    def ingest_configured_logs(self) -> pd.DataFrame:
        """Ingest the config's sources.logs into the retained store, as `compliance logs ingest` does
        without paths; files ingested before are skipped. One row per configured source."""
        from .retention import ingest
        from .sources.bindings import load_bindings, owners

        bindings = owners(load_bindings(self.settings.sources.bindings, self.settings.resolve), "domain")
        rows = []
        for entry in self.settings.sources.logs:
            r = ingest(self.settings, [(self.settings.resolve(entry.path), entry.format)], bindings=bindings,
                       domain=entry.domain, account_id=entry.account_id, encoding=entry.encoding)
            rows.append({"path": entry.path, "format": entry.format, "files_read": r.files_read,
                         "files_skipped": len(r.files_skipped), "rows_read": r.rows_read, "rows_stored": r.rows_stored,
                         "rows_quarantined": r.rows_quarantined, "partitions": len(r.partitions_written),
                         # read again by the next ingest: unreadable, or a truncated tail
                         "files_quarantined": len(r.files_quarantined)})
        return pd.DataFrame(rows)

    def query_logs(self, *, request_ref: str | None, authority: str | None, ip: str | None = None,
                   cidr: str | None = None, domain: str | None = None, url_contains: str | None = None,
                   account: str | None = None, start: TimeLike = None, end: TimeLike = None,
                   fields: Sequence[str] | str | None = None, out_dir: str | Path | None = None,
                   requested_by: str | None = None) -> QueryResult:
        """A regulator's query over the retained logs: ``.df`` the rows, ``.manifest`` what was asked and
        exported, ``.out_dir`` the CSV / Parquet / manifest. Refused without a request reference and
        authority; every call, refused or not, is appended to the audit log exactly as the CLI's."""
        return run_query(self.settings, request_ref=request_ref, authority=authority, ip=ip, cidr=cidr,
                         domain=domain, url_contains=url_contains, account=account, start=start, end=end,
                         fields=fields, out_dir=out_dir, requested_by=requested_by)

    def audit(self, *, action: str | None = None) -> pd.DataFrame:
        """The audit log (queries, refusals, holds), oldest first; ``action`` keeps one kind.
        Unchecked here: `compliance audit verify` proves the hash chain intact."""
        from .query import read_audit

        rows = [{"seq": e.get("seq"), "ts": e.get("ts"), "actor": e.get("actor"), "action": e.get("action"),
                 "request_ref": (e.get("details") or {}).get("request_ref"), "details": e.get("details")}
                for e in read_audit(self.settings) if action is None or e.get("action") == action]
        df = pd.DataFrame(rows, columns=["seq", "ts", "actor", "action", "request_ref", "details"])
        df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601", errors="coerce")
        return df

    # -- backtests ---------------------------------------------------------------------------------

    def backtest(self, draft: str | Path, *, against: str | Path | None = None, start: TimeLike = None,
                 end: TimeLike = None, client: Any = None) -> BacktestResult:
        """What a draft rule file or folder would change against the live rules (see pipeline.backtest).
        Nothing is written: the live cases stay as they are."""
        return _backtest(self.settings, draft, against=against, start=start, end=end, client=client)

    # -- plots -------------------------------------------------------------------------------------

    def plot_cases_over_time(self, *, freq: str = "D", by: str = "category", when: str = "first_event",
                             ax: Axes | None = None) -> Axes:
        """Stacked bars of new cases per period (``freq``: a pandas frequency such as "D" or "W"),
        split by ``by`` (category, severity, rule_id, status ...), dated by ``when``."""
        df = self.cases()
        ax = _axes(ax)
        if df.empty:
            return _empty(ax, "no cases yet")
        period = df[when].dt.tz_convert(None).dt.to_period(freq).dt.start_time
        table = pd.crosstab(period, df[by]).sort_index()
        table.index = [t.strftime("%Y-%m-%d") for t in table.index]
        table.plot.bar(stacked=True, ax=ax, width=0.9)
        ax.set_xlabel(f"{when.replace('_', ' ')} ({freq})")
        ax.set_ylabel("cases")
        ax.set_title(f"Cases over time by {by}")
        ax.legend(fontsize="small", ncols=2)
        return ax

    def plot_top_accounts(self, n: int = 10, *, by: str = "severity", ax: Axes | None = None) -> Axes:
        """Horizontal bars of the ``n`` accounts with the most cases, split by ``by``."""
        df = self.cases()
        ax = _axes(ax)
        df = df[df["account_id"].notna()]
        if df.empty:
            return _empty(ax, "no case is attributed to an account")
        table = pd.crosstab(df["account_id"], df[by])
        if by == "severity":
            table = table[[s for s in SEVERITY_ORDER if s in table.columns]]
        table = table.loc[table.sum(axis=1).sort_values(ascending=True).index[-n:]]
        table.plot.barh(stacked=True, ax=ax)
        ax.set_xlabel("cases")
        ax.set_ylabel("account")
        ax.set_title(f"Top {min(n, len(table))} accounts by cases")
        return ax

    def plot_hits_per_pattern(self, rule_id: str | None = None, n: int = 15, *, ax: Axes | None = None) -> Axes:
        """Horizontal bars of the ``n`` patterns with the most matches (one rule's, or every rule's)."""
        df = self.hits_per_pattern(rule_id).head(n)
        ax = _axes(ax)
        if df.empty:
            return _empty(ax, "no matches")
        labels = [p if rule_id else f"{r}: {p}" for r, p in zip(df["rule_id"], df["pattern"])]
        labels = [s if len(s) <= 60 else s[:57] + "..." for s in labels]
        ax.barh(labels[::-1], df["matches"].to_numpy()[::-1])
        ax.set_xlabel("matches in evidence")
        ax.set_title(f"Matches per pattern{' of ' + rule_id if rule_id else ''}")
        return ax


def _flatten(case: dict[str, Any]) -> list[dict[str, Any]]:
    """A case's evidence items → one dict per match (an item holds one event, with one or more matches)."""
    rows = []
    for item in case.get("evidence") or []:
        for match in item.get("matches") or [{}]:
            rows.append({"case_id": case["case_id"], "rule_id": case["rule_id"], "status": case["status"],
                         "account_id": case.get("account_id"), "subject_id": case.get("subject_id"),
                         "hit_key": item.get("hit_key"), "source_file": item.get("source_file"),
                         "source_line": item.get("source_line"), "event_time": item.get("event_time"),
                         "field": match.get("field"), "kind": match.get("kind"), "pattern": match.get("pattern"),
                         "text": match.get("text"), "normalized": match.get("normalized")})
    return rows


_FONT_CHECKED = False


def _axes(ax: Axes | None) -> Axes:
    global _FONT_CHECKED
    import matplotlib.pyplot as plt

    if not _FONT_CHECKED:
        _FONT_CHECKED = True
        _prefer_cjk_font()
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=(9, 4.5))
    return new


def _prefer_cjk_font() -> None:
    """Patterns and keys are often Chinese: use a CJK font where one is installed. Without one the
    glyphs show as boxes, and matplotlib would warn once per glyph per draw, burying the output."""
    import matplotlib
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for name in ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
                 "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC"):
        if name in names:
            matplotlib.rcParams["font.sans-serif"] = [name, *matplotlib.rcParams["font.sans-serif"]]
            matplotlib.rcParams["font.family"] = "sans-serif"
            return
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")


def _empty(ax: Axes, text: str) -> Axes:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return ax


__all__ = ["Analyst", "BacktestResult", "ConfigError", "QueryError", "QueryResult", "StoreError", "connect", "find_config"]
