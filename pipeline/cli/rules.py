"""`compliance rules lint|test`: load rule files and run their inline tests."""

from __future__ import annotations

import sys

import click

from ..errors import RuleLoadError
from ..rules.loader import load_rules
from ..rules.model import RuleSet
from . import get_settings, main


@main.group()
def rules() -> None:
    """Check rule files."""


def _load(ctx: click.Context, path: str | None) -> RuleSet:
    settings = get_settings(ctx)
    root = path or settings.rules_dir
    try:   # a draft outside the rules folder may still use the configured lexicons
        return load_rules(root, (settings.rules_dir, *settings.rule_list_paths))
    except RuleLoadError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) in rule files under {root}", err=True)
        sys.exit(exc.exit_code)   # bad input, as everywhere: 2


@rules.command()
@click.argument("path", required=False)
@click.pass_context
def lint(ctx: click.Context, path: str | None) -> None:
    """Load every rule file under PATH (default: the config's rules folder); one line per problem."""
    ruleset = _load(ctx, path)
    click.echo(f"{len(ruleset.rules)} rules OK ({ruleset.digest[:12]})")


@rules.command("test")
@click.argument("path", required=False)
@click.pass_context
def test_rules(ctx: click.Context, path: str | None) -> None:
    """Run the rules' inline tests: exit 1 if any fails, 2 if a rule file has problems."""
    from ..matchers.selftest import run_rule_tests

    ruleset = _load(ctx, path)
    outcomes = run_rule_tests(ruleset)
    failed = [o for o in outcomes if not o.passed]
    for o in failed:
        click.echo(f"FAIL {o.line()}", err=True)
    untested = [r.id for r in ruleset.rules if not r.tests]
    for rid in untested:
        click.echo(f"note: rule {rid} has no inline tests", err=True)
    click.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(1)
