"""The `compliance` command line: one group, subcommand groups in sibling modules.

Every command gets its Settings through ``get_settings(ctx)``; PipelineErrors become one
readable line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from ..config import Settings, default_config_path, load_settings
from .. import signals
from ..errors import ConfigError, PipelineError
from ..logging import log_traceback, setup_logging
from . import failures


# Each top-level command: the module that defines it (imported only when the command runs, so that
# `compliance rules lint` does not import dask, pandas or the web app) and its one-line help, shown
# by `compliance --help` without importing any of them (a test checks it against the commands').
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("logs", "The hash-chained audit log."),
    "cases": ("cases", "Review cases."),
    "enforce": ("enforce", "Plan, apply and deliver enforcement actions; undo them; render notices."),
    "generate": ("generate", "Write realistic data in every supported format, a config for it, and the ground truth."),
    "logs": ("logs", "The retained access-log store and regulators' queries."),
    "quarantine": ("quarantine", "Rows and files that scans quarantined (could not parse or read)."),
    "rules": ("rules", "Check rule files."),
    "scan": ("scan", "Scan the configured sources and turn rule hits into cases."),
    "serve": ("web", "Serve the case review app on the case store: queue, cases, decisions, enforcement, rules."),
    "users": ("web", "Accounts of the review app (`compliance serve`)."),
}


class _Group(click.Group):
    """Turns PipelineError (and anything unexpected) into one line and an exit code.

    The root group loads its subcommands lazily (``COMMANDS``): a command module registers
    itself on ``main`` when imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        if ctx.parent is not None or self is not main:
            return super().list_commands(ctx)
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self is main and cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[cmd_name][0]}")
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self is not main:
            return super().format_commands(ctx, formatter)
        # the listing from the table: formatting help imports no command module
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=text).get_short_help_str(limit))
                for name, (_, text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `--config PATH` is accepted anywhere on the line (`compliance scan --config x.yaml` too)
        if ctx.parent is None:
            args = _config_first(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        # SIGTERM (systemd, kill) unwinds like Ctrl-C: a scan under way marks its run interrupted
        if ctx.parent is None:
            signals.received = None   # a command run in-process after an interrupted one starts afresh
        if ctx.parent is None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, failures.raise_interrupted)
            signals.quiet_lost_interrupts()
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # not ignored by a parent
                signal.signal(signal.SIGINT, failures.raise_interrupted)
        try:
            try:
                return super().invoke(ctx)
            except Exception as exc:
                if signals.received is not None and ctx.parent is None:   # what the signal broke
                    raise signals.Interrupted(signals.received) from exc
                raise
        except PipelineError as exc:
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            if threading.current_thread() is threading.main_thread():
                # reported once: a second signal while the process exits must not replace the exit code
                # (Python dies of an uncaught KeyboardInterrupt with -SIGINT) or print a traceback
                for s in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(s, signal.SIG_IGN)
            click.echo(f"interrupted ({signal.Signals(signum).name}): stopped; a scan under way is marked "
                       "interrupted and committed nothing", err=True)
            sys.exit(128 + signum)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # the reader went away (`compliance cases list | head`): stop quietly, as a pipe does,
            # with stdout pointed at nothing so that flushing at exit raises nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:
            failure = failures.classify(exc)  # the machine's state (disk, network, rights), not a bug
            where = _log_traceback(ctx, exc)
            kept = f"the traceback is in {where}" if where else "no traceback could be written anywhere"
            if failure is not None:
                click.echo(f"error: {failure.message} ({kept})", err=True)
                sys.exit(failure.code)
            click.echo(f"error: internal error: {type(exc).__name__}: {exc} ({kept}; please report it)", err=True)
            sys.exit(failures.EXIT_INTERNAL)


def _log_traceback(ctx: click.Context, exc: Exception) -> str | None:
    """Write the traceback where the user can find it: the state folder's pipeline.log once the
    settings are loaded and it can be written, else a file of its own in the temporary folder."""
    return log_traceback(exc)


def _config_first(args: list[str]) -> list[str]:
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--config" and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--config="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $COMPLIANCE_CONFIG, else ./config.yaml, else packaged defaults).")
@click.option("--state-dir", "state_dir", type=click.Path(file_okay=False), default=None,
              help="State folder (cases, retained logs, audit log); overrides state_dir of the config. "
                   "Without a config file, commands that change state need it.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, state_dir: str | None) -> None:
    """Compliance and content-policy checks over objects, access logs, ICP filings and streams."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["state_dir"] = state_dir


# Commands that only read the state; every other command may change it, and without a config file
# is refused unless the state folder is named (--state-dir or COMPLIANCE_STATE_DIR).
READ_ONLY = {"cases list", "cases show", "cases export", "rules", "quarantine", "audit verify", "audit list",
             "logs verify", "logs hold list", "enforce status", "enforce notice", "generate",
             "users list"}
# Commands that read no state at all (rule files, generated data): without a config they create no state folder.
NO_STATE = {"rules", "generate"}
LOOKED_FOR = "--config, $COMPLIANCE_CONFIG, ./config.yaml"


def _command_words(ctx: click.Context) -> str:
    words: list[str] = []
    while ctx.parent is not None:
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(words)


def _reads_only(words: str) -> bool:
    return _listed(words, READ_ONLY)


def _listed(words: str, commands: set[str]) -> bool:
    return any(words == r or words.startswith(r + " ") for r in commands)


def get_settings(ctx: click.Context) -> Settings:
    """Load (once) the settings for this invocation, honouring --config and --state-dir on the root group."""
    root = ctx.find_root()
    root.ensure_object(dict)
    obj = root.obj
    if "settings" not in obj:
        path = obj.get("config_path") or default_config_path()
        environ = dict(os.environ)
        if obj.get("state_dir"):
            environ["COMPLIANCE_STATE_DIR"] = os.path.abspath(obj["state_dir"])
        words = _command_words(ctx)
        settings = load_settings(path, environ)
        log_to: Path | None = settings.state_path
        if path is None and not environ.get("COMPLIANCE_STATE_DIR"):
            where = f"{LOOKED_FOR} (in {os.getcwd()})"
            hint = ("run from the folder holding config.yaml, pass --config PATH, or pass --state-dir DIR to use "
                    "the packaged defaults with that state folder")
            if not _reads_only(words):
                raise ConfigError(f"no config file found: looked for {where}; `compliance {words}` changes state "
                                  f"and would start an empty one in {settings.state_path}", hint=hint)
            if _listed(words, NO_STATE):
                log_to = None   # nothing of the state is read: do not create a state folder for a log file
            elif not settings.state_path.is_dir():
                # reading a state that does not exist would create an empty one and show nothing from it
                raise ConfigError(f"no config file found: looked for {where}, and there is no state folder "
                                  f"{settings.state_path} to read", hint=hint)
            click.echo(f"note: no config file found (looked for {where}); using the packaged defaults", err=True)
        setup_logging(settings.logging.level, log_to)
        obj["settings"] = settings
    settings_obj: Settings = obj["settings"]
    return settings_obj



def run() -> None:
    """The `compliance` program: run the command line, then leave without tearing the interpreter down."""
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if code is not None and not isinstance(code, int):
        click.echo(str(code), err=True)
        code = 1
    _leave(code or 0)


def _leave(code: int) -> None:
    """Exit with ``code`` once everything is written and closed.

    A finished command has closed its stores, files and cluster; what is left is the interpreter's own
    teardown, which frees every module and object one by one (about 0.4 s after a scan, with
    pandas, pyarrow, numba and dask loaded) for a process about to end anyway. So the exit handlers
    run (logging, dask, multiprocessing), the standard streams and the log sinks are flushed, and
    the process ends at once. If a thread other than this one is still working, Python's own exit
    waits for it instead.
    """
    import atexit

    from loguru import logger

    if any(not t.daemon for t in threading.enumerate() if t is not threading.current_thread()):   # alive ones only
        sys.exit(code)
    atexit._run_exitfuncs()
    logger.remove()   # closes (and so flushes) every sink
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a reader gone away, or a stream already closed
            pass
    os._exit(code)
