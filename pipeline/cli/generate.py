"""`compliance generate`: synthetic objects and access logs with planted violations and ground truth."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
import yaml

from . import main


@main.command()
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Folder to write into.")
@click.option("--rows", type=click.IntRange(min=1000), default=2000, show_default=True,
              help="Object metadata rows (at least 1000: every format needs room for its planted rows).")
@click.option("--log-lines", type=click.IntRange(min=0), default=None,
              help="Background access-log lines (default: 5 × rows); planted violations, near-misses and "
                   "malformed lines come on top.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rules-dir", type=click.Path(file_okay=False), default=None,
              help="Rules folder the generated config points at (default: the packaged project's rules/).")
def generate(out: str, rows: int, log_lines: int | None, seed: int, rules_dir: str | None) -> None:
    """Write realistic data in every supported format, a config for it, and the ground truth."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = importlib.import_module("pipeline.generate.objects")
    kwargs = {"rules_dir": Path(rules_dir).resolve()} if rules_dir else {}
    truth = objects.generate_objects(out_dir, rows=rows, seed=seed, **kwargs)
    click.echo(f"objects: {rows} rows → {out_dir / 'objects'} ({_count(truth)})")
    try:
        logs = importlib.import_module("pipeline.generate.logs")
    except ModuleNotFoundError:
        return
    lines = log_lines if log_lines is not None else rows * 5
    ltruth = logs.generate_logs(out_dir, lines=lines, seed=seed)
    _add_logs_to_config(out_dir / "config.yaml", ltruth)
    written = sum(f["lines"] for f in ltruth["files"])
    click.echo(f"logs: {written} lines ({lines} background, the rest planted) → {out_dir / 'logs'} ({_count(ltruth)})")
    icp = importlib.import_module("pipeline.generate.icp")
    itruth = icp.generate_icp(out_dir, seed=seed)
    _add_entries_to_config(out_dir / "config.yaml", itruth["config"])
    click.echo(f"icp, licences, streams → {out_dir} ({_count(itruth)})")
    click.echo(f"ground truth in {out_dir / 'truth'}; scan it with: compliance --config {out_dir / 'config.yaml'} scan")


def _add_logs_to_config(config: Path, truth: dict[str, Any]) -> None:
    """Point the generated config at the generated logs and bindings too."""
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    sources = data.setdefault("sources", {})
    sources["logs"] = [{k: v for k, v in (("path", f["path"]), ("format", f["format"]), ("domain", f.get("domain")))
                        if v} for f in truth["files"]]
    sources["bindings"] = [{"path": "bindings.csv", "format": "csv"}]
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _add_entries_to_config(config: Path, entries: dict[str, list[dict[str, Any]]]) -> None:
    """Append source entries (kind → list of {path, format, ...}) to the generated config."""
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    sources = data.setdefault("sources", {})
    for kind, items in entries.items():
        existing = sources.setdefault(kind, [])
        existing.extend(i for i in items if i not in existing)
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _count(truth: object) -> str:
    if isinstance(truth, dict):
        return ", ".join(f"{k}: {v}" for k, v in truth.items() if isinstance(v, (int, float, str)))
    return ""
