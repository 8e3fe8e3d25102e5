"""The command line as a user meets it: one readable line per problem, exit codes, --config anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main


def test_config_option_is_accepted_after_the_subcommand(root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    before = runner.invoke(main, ["--config", str(root / "config.yaml"), "rules", "lint"])
    after = runner.invoke(main, ["rules", "lint", "--config", str(root / "config.yaml")])
    assert before.exit_code == after.exit_code == 0
    assert before.stdout == after.stdout and "rules OK" in after.stdout


def test_unknown_setting_is_one_line_with_place_and_valid_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("scan:\n  max_evidense: 5\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["--config", str(cfg), "scan"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{cfg}:2:3" in lines[0] and "max_evidence" in lines[0]


def test_broken_rule_file_gives_one_line_per_problem(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text(
        "rules:\n  - id: objects.x.y\n    title: t\n    clause: '3.1'\n    category: c\n    severity: hgh\n"
        "    source: objects\n    match: {keywords: [a], fields: [kee]}\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["rules", "lint", str(rules)])
    assert res.exit_code == 2
    problems = [ln for ln in res.stderr.splitlines() if ln.startswith(str(rules))]
    assert len(problems) == 2 and "Traceback" not in res.output
    assert any("bad.yaml:6:15" in p and "severity" in p for p in problems)
    assert any("bad.yaml:8:" in p and "unknown field 'kee'" in p for p in problems)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), "cases", "list"])
    assert res.exit_code == 2 and "config file not found" in res.stderr


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    """`compliance cases list --format json | head -1`: the pipe closes early; no internal error."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from enforcement_server import seed_cases

    from pipeline.cases.store import open_store

    store = open_store(tmp_path / "state")
    seed_cases(store, [("objects.gambling", "object", f"b/{i:05d}.jpg", "acc1") for i in range(800)])
    store.close()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "cases", "list",
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()   # more than a pipe holds follows: the writer is still writing
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert b'"case_id"' in first and "error" not in err


def test_internal_error_points_to_a_traceback_file_that_exists(tmp_path: Path, monkeypatch) -> None:
    import re

    import pipeline.cli.cases as cases_cli

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n", encoding="utf-8")
    monkeypatch.setattr(cases_cli, "_load", broken)
    res = CliRunner().invoke(main, ["--config", str(cfg), "cases", "list"])
    assert res.exit_code == 1 and "internal error: ZeroDivisionError: boom" in res.stderr
    where = re.search(r"the traceback is in (\S+);", res.stderr)
    assert where and Path(where.group(1)).exists() and "ZeroDivisionError" in Path(where.group(1)).read_text()


def test_config_entries_with_problems_are_named(tmp_path: Path, root: Path) -> None:
    sample = root / "examples" / "sample"
    cases = {
        f"objects:\n    - {{path: {sample / 'objects/generic.csv'}, format: xls}}":
            ("sources.objects entry 1", "unknown objects format 'xls'"),
        f"objects:\n    - {{path: {sample / 'objects/generic.csv'}, format: csv}}\n"
        f"    - {{path: {tmp_path / 'missing.csv'}, format: csv}}":
            ("sources.objects entry 2", "no such file or folder"),
        f"logs:\n    - {{path: {sample / 'logs/common/video02.example.cn.access.log'}, format: common}}":
            ("sources.logs entry 1", "format common carries no domain"),
    }
    for sources, (entry, problem) in cases.items():
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"rules: {root / 'rules'}\nstate_dir: {tmp_path / 'state'}\nsources:\n  {sources}\n",
                       encoding="utf-8")
        res = CliRunner().invoke(main, ["--config", str(cfg), "scan"])
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith(f"error: {entry} (") and problem in res.stderr


def test_root_help_lists_every_command_with_its_own_short_help() -> None:
    # the root help is printed from a table, without importing the commands: it must say what they say
    import click

    import pipeline.cli as cli
    from pipeline.cli import commands  # noqa: F401  (every command registered)

    ctx = click.Context(main)
    registered = {name: cmd for name, cmd in main.commands.items()}
    assert set(registered) == set(cli.COMMANDS)
    for name, (module, text) in cli.COMMANDS.items():
        cmd = registered[name]
        assert cmd.callback is not None and cmd.callback.__module__ == f"pipeline.cli.{module}"
        assert cmd.get_short_help_str(limit=1000) == click.Command(name, help=text).get_short_help_str(limit=1000)
    assert main.list_commands(ctx) == sorted(cli.COMMANDS)


def _modules_after(*args: str, cwd: Path) -> set[str]:
    import subprocess
    import sys

    # the command group itself: `compliance` (``run``) ends the process as soon as it returns
    code = ("import sys\nsys.argv = ['compliance', *sys.argv[1:]]\nfrom pipeline.cli import main\n"
            "try:\n    main()\n"
            "except SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    return set(done.stderr.split())


def test_help_and_rule_lint_import_neither_dask_nor_the_kernel(root: Path) -> None:
    heavy = {"dask", "distributed", "numba", "pandas", "duckdb", "starlette", "pipeline.normalize.kernel"}
    help_modules = _modules_after("--help", cwd=root)
    assert "click" in help_modules and not heavy & help_modules
    lint_modules = _modules_after("rules", "lint", cwd=root)
    assert "pipeline.rules.loader" in lint_modules and "pipeline.normalize.table" in lint_modules
    assert not {"dask", "distributed", "numba", "pipeline.normalize.kernel", "starlette"} & lint_modules
    serve_help = _modules_after("serve", "--help", cwd=root)
    assert "pipeline.cli.web" in serve_help and "dask" not in serve_help


def _leave_in_child(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys, threading, time\nfrom pipeline.cli import _leave\n" + body
    return subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)


def test_the_program_leaves_with_its_exit_code_and_everything_written(tmp_path: Path) -> None:
    # buffered output (stdout is a pipe here) and the exit code survive the quick exit
    done = _leave_in_child("import atexit\natexit.register(lambda: print('exit handler ran'))\n"
                           "print('report', end='')\nsys.stderr.write('warn')\n_leave(3)\n", tmp_path)
    assert done.returncode == 3
    assert done.stdout == "reportexit handler ran\n" and done.stderr == "warn"


def test_the_program_waits_for_a_thread_still_working(tmp_path: Path) -> None:
    done = _leave_in_child("def work():\n    time.sleep(0.5)\n    open(sys.argv[1] + '/written', 'w').write('x')\n"
                           "threading.Thread(target=work).start()\n_leave(0)\n", tmp_path)
    assert done.returncode == 0
    assert (tmp_path / "written").read_text() == "x"
