"""`compliance rules lint|test|show`: load rule files (the project's own and Sigma), run their inline
tests, print a rule as the engine compiled it."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from ..errors import RuleLoadError
from ..rules import model as m
from ..rules.loader import load_rules
from ..rules.model import RuleSet
from ..rules.sigma.mapping import LOG_FORMAT
from . import get_settings, main


@main.group()
def rules() -> None:
    """Check rule files."""


def _load(ctx: click.Context, path: str | None, sigma_folders: tuple[str, ...] = ()) -> RuleSet:
    settings = get_settings(ctx)
    root = path or settings.rules_dir
    folders = tuple(sigma_folders) or settings.sigma_folders
    try:   # a draft outside the rules folder may still use the configured lexicons
        return load_rules(root, (settings.rules_dir, *settings.rule_list_paths), sigma_folders=folders,
                          sigma=settings.sigma)
    except RuleLoadError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) in rule files under {root}"
                   + (f" and {', '.join(folders)}" if folders else ""), err=True)
        sys.exit(exc.exit_code)   # bad input, as everywhere: 2


def _sigma_rules(ruleset: RuleSet) -> list[m.Rule]:
    return [r for r in ruleset.rules if "sigma" in r.meta]


_SIGMA_FOLDER = click.option("--sigma-folder", "sigma_folders", multiple=True, type=click.Path(),
                             help="Read Sigma rules from this folder instead of sigma.folders (repeatable).")


@rules.command()
@click.argument("path", required=False)
@_SIGMA_FOLDER
@click.pass_context
def lint(ctx: click.Context, path: str | None, sigma_folders: tuple[str, ...]) -> None:
    """Load every rule file under PATH (default: the config's rules folder) and the Sigma rules under
    sigma.folders; one line per problem, and every Sigma rule that cannot run, with the reason."""
    ruleset = _load(ctx, path, sigma_folders)
    for note in ruleset.notes:
        click.echo(f"note: {note}", err=True)
    for s in ruleset.skipped:
        click.echo(str(s))
    sigma = _sigma_rules(ruleset)
    if sigma:
        click.echo(f"note: {len(sigma)} Sigma rules carry no inline tests (Sigma has none); "
                   "check them with a backtest over real logs", err=True)
    skipped = f", {len(ruleset.skipped)} Sigma rule(s) unsupported (skipped by the scan)" if ruleset.skipped else ""
    click.echo(f"{len(ruleset.rules)} rules OK ({len(sigma)} from Sigma){skipped} ({ruleset.digest[:12]})")


@rules.command("test")
@click.argument("path", required=False)
@_SIGMA_FOLDER
@click.pass_context
def test_rules(ctx: click.Context, path: str | None, sigma_folders: tuple[str, ...]) -> None:
    """Run the rules' inline tests: exit 1 if any fails, 2 if a rule file has problems."""
    from ..matchers.selftest import run_rule_tests

    ruleset = _load(ctx, path, sigma_folders)
    outcomes = run_rule_tests(ruleset)
    failed = [o for o in outcomes if not o.passed]
    for o in failed:
        click.echo(f"FAIL {o.line()}", err=True)
    sigma = {r.id for r in _sigma_rules(ruleset)}
    untested = [r.id for r in ruleset.rules if not r.tests and r.id not in sigma]
    for rid in untested:
        click.echo(f"note: rule {rid} has no inline tests", err=True)
    if sigma:
        click.echo(f"note: {len(sigma)} Sigma rules have no inline tests (Sigma rules carry none)", err=True)
    click.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(1)


@rules.command()
@click.argument("rule_id")
@_SIGMA_FOLDER
@click.pass_context
def show(ctx: click.Context, rule_id: str, sigma_folders: tuple[str, ...]) -> None:
    """Print one rule as the engine compiled it (for a Sigma rule: its converted form and field mapping)."""
    import yaml

    ruleset = _load(ctx, None, sigma_folders)
    try:
        rule = ruleset.by_id(rule_id)
    except KeyError:
        skipped = [s for s in ruleset.skipped if s.rule_id == rule_id]
        if skipped:
            click.echo(f"{skipped[0]}", err=True)
            sys.exit(2)
        close = [r.id for r in ruleset.rules if rule_id.lower() in r.id.lower()][:10]
        click.echo(f"no rule {rule_id!r}" + (f"; did you mean: {', '.join(close)}" if close else
                                             " (compliance rules lint lists the rules loaded)"), err=True)
        sys.exit(2)
    click.echo(yaml.safe_dump(rule_view(rule), allow_unicode=True, sort_keys=False, width=110), nl=False)


def rule_view(rule: m.Rule) -> dict[str, Any]:
    """A rule as plain data: what `rules show` prints."""
    out: dict[str, Any] = {"id": rule.id, "title": rule.title, "source": list(rule.sources), "clause": rule.clause,
                           "category": rule.category, "severity": rule.severity, "file": f"{rule.path}:{rule.line}",
                           "enabled": rule.enabled}
    if rule.subject:
        out["subject"] = rule.subject
    if rule.law:
        out["law"] = rule.law
    sigma = rule.meta.get("sigma")
    if sigma:
        lifted = ("field_mapping", "field_mapping_by_format")
        out["sigma"] = {k: val for k, val in sigma.items() if k not in lifted}
        out.update({k: sigma[k] for k in lifted if k in sigma})
    if rule.match is not None:
        out["match"] = matcher_view(rule.match)
    if rule.unless:
        out["unless"] = [matcher_view(u) for u in rule.unless]
    if rule.aggregate is not None:
        out["aggregate"] = {k: val if not isinstance(val, tuple) else list(val)
                            for k, val in dataclasses.asdict(rule.aggregate).items() if val is not None}
    if rule.check:
        out["check"] = rule.check
    if sigma:
        out["licence"] = "Detection Rule License 1.1 (keep author and references when showing this rule)"
    return out


def matcher_view(node: m.Matcher) -> Any:
    if isinstance(node, (m.AnyOf, m.AllOf)):
        return {"any" if isinstance(node, m.AnyOf) else "all": [matcher_view(c) for c in node.children]}
    if isinstance(node, m.Not):
        inner = node.child.child if isinstance(node.child, m.Not) else None
        if isinstance(inner, m.FieldCondition) and inner.field == LOG_FORMAT:   # a Sigma per-format guard
            return {"log_format": list(inner.value)}
        return {"not": matcher_view(node.child)}
    if isinstance(node, m.Regex):
        out: dict[str, Any] = {"regex": node.pattern, "fields": list(node.fields)}
        if not node.decoded:
            out["as_logged"] = True
        if node.label:
            out["sigma"] = node.label.split(") ", 1)[-1]
        return out
    if isinstance(node, m.Keywords):
        return {"keywords": list(node.words)[:20] + (["..."] if len(node.words) > 20 else []),
                "fields": list(node.fields), "normalize": node.normalize}
    if isinstance(node, m.FieldCondition):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        field = "NULL (" + node.field.split(":", 1)[1] + ")" if node.field.startswith("sigma-null:") else node.field
        return {"field": field, node.op: value}
    if isinstance(node, m.HashList):
        return {"hash_list": node.path, "field": node.field, "hashes": len(node.hashes)}
    return repr(node)


# `rules backtest` lives in a module of its own; it attaches itself to this group when imported
from . import backtest  # noqa: E402,F401
