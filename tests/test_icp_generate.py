"""The ICP / streams generator: its data read back through the adapters, and the licensing checks and
stream rules over it find exactly the planted violations of its ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipeline.config import load_settings
from pipeline.generate.icp import generate_icp
from pipeline.generate.logs import generate_logs
from pipeline.generate.objects import generate_objects
from pipeline.licensing import LicensingInput, evaluate_licensing, load_licensing_sources
from pipeline.matchers.evaluate import CompiledRules
from pipeline.matchers.hits import record_hits
from pipeline.records import SCHEMAS, conform
from pipeline.rules.loader import load_rules
from pipeline.sources import logs as _logs, objects as _objects, streams as _streams  # noqa: F401  (registries)
from pipeline.sources.base import REGISTRIES, expand
from pipeline.sources.bindings import load_bindings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gen")
    generate_objects(out, rows=1000, seed=5)
    logs = generate_logs(out, lines=1500, seed=5)
    summary = generate_icp(out, seed=5)
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    sources = config["sources"]
    sources["logs"] = [{k: v for k, v in f.items() if k in ("path", "format", "domain") and v} for f in logs["files"]]
    sources["bindings"] = [{"path": "bindings.csv", "format": "csv"}]
    for kind, entries in summary["config"].items():
        sources[kind] = sources.get(kind, []) + entries
    config["rules"] = str(ROOT / "rules")
    (out / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return out, summary


def _read(settings: Any, kind: str) -> pd.DataFrame:
    frames = []
    for e in getattr(settings.sources, kind):
        extras = {k: getattr(e, k) for k in ("bucket", "account_id", "domain") if getattr(e, k, None)
                  and not (kind == "streams" and k != "account_id") and not (kind == "logs" and k == "bucket")}
        for path in expand(settings.resolve(e.path)):
            if path.endswith("manifest.json"):
                continue
            frames.append(conform(REGISTRIES[kind].get(e.format)(path, **extras).records, SCHEMAS[kind]))
    return pd.concat(frames, ignore_index=True)


def test_generated_sources_read_back_with_the_planted_quarantine(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    settings = load_settings(str(out / "config.yaml"), environ={})
    filings, licences, quarantine, counts = load_licensing_sources(settings)
    assert counts["icp"] == {"rows_read": summary["filings"], "rows_parsed": summary["filings"] - 2, "rows_quarantined": 2}
    assert counts["licences"]["rows_quarantined"] == 1 and len(licences) == summary["licences"] - 1
    assert set(quarantine["source_file"].map(lambda p: Path(p).name)) <= {"filings.csv", "filings.jsonl", "licences.csv"}
    streams = _read(settings, "streams")
    assert len(streams) == summary["streams"] - 2
    bindings = load_bindings(settings.sources.bindings, settings.resolve)
    assert (bindings[bindings["resource"] == "shared01.example.cn"]["account_id"].nunique()) == 2


def test_checks_find_exactly_the_planted_licensing_violations(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _summary = generated
    settings = load_settings(str(out / "config.yaml"), environ={})
    rules = load_rules(settings.rules_dir).rules
    site_rules = tuple(r for r in rules if r.category.startswith("site_"))
    objects, logs = _read(settings, "objects"), _read(settings, "logs")
    site_hits = pd.concat([record_hits(CompiledRules(tuple(r for r in site_rules if src in r.sources), src), df)
                           for src, df in (("objects", objects), ("logs", logs))], ignore_index=True)
    traffic = logs.assign(domain=logs["domain"].str.lower()).groupby("domain").agg(
        requests=("ts", "size"), bytes_sent=("bytes_sent", "sum"), first_ts=("ts", "min"), last_ts=("ts", "max")).reset_index()
    buckets = objects.groupby("bucket").size().rename("objects").reset_index()
    filings, licences, _q, _c = load_licensing_sources(settings)
    data = LicensingInput(filings, licences, load_bindings(settings.sources.bindings, settings.resolve), traffic,
                          site_hits, buckets)
    hits = evaluate_licensing(rules, data)
    found = sorted(zip(hits["rule_id"], hits["subject_id"], hits["account_id"]))
    truth = [json.loads(line) for line in (out / "truth" / "icp.jsonl").read_text(encoding="utf-8").splitlines()]
    assert found == sorted((t["rule_id"], t["subject_id"], t["account_id"]) for t in truth)
    assert hits["hit_key"].is_unique
    # a re-evaluation of the same data gives the same keys: the case store adds nothing
    assert sorted(evaluate_licensing(rules, data)["hit_key"]) == sorted(hits["hit_key"])
    # the evidence of the missing licence names the rule and samples that suggested the field
    vod = json.loads(hits[(hits["subject_id"] == "vod01.example.cn")].iloc[0]["evidence"])
    inferred = next(e for e in vod if e["kind"] == "inference")
    assert inferred["rules"][0]["rule_id"] == "sites.fields.audiovisual" and inferred["rules"][0]["hits"] == 4


def test_stream_rules_find_exactly_the_planted_stream_violations(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _summary = generated
    settings = load_settings(str(out / "config.yaml"), environ={})
    rules = load_rules(settings.rules_dir)
    streams = _read(settings, "streams")
    hits = record_hits(CompiledRules(rules.for_source("streams"), "streams"), streams)
    truth = [json.loads(line) for line in (out / "truth" / "streams.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(zip(hits["rule_id"], hits["subject_id"])) == sorted((t["rule_id"], t["subject_id"]) for t in truth)
    assert set(hits["subject_type"]) == {"stream"}


def test_generator_is_deterministic(tmp_path: Path, generated: tuple[Path, dict[str, Any]]) -> None:
    out, _summary = generated
    generate_objects(tmp_path, rows=1000, seed=5)
    generate_logs(tmp_path, lines=1500, seed=5)
    generate_icp(tmp_path, seed=5)
    for rel in ("icp/filings.csv", "icp/filings.jsonl", "streams/streams.jsonl", "truth/icp.jsonl", "bindings.csv"):
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel
