"""One exception tree for the whole package; every error can carry where it happened."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in an input file: 1-based line and column, either may be unknown."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class PipelineError(Exception):
    """Base of every error the package raises on purpose.

    ``hint`` tells the user what to do about it; the CLI prints
    ``location: message (hint)`` and exits non-zero, never a traceback.
    """

    exit_code = 2

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(PipelineError):
    """The configuration file or an environment override is wrong."""


class RuleError(PipelineError):
    """One problem in one rule file."""

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None,
                 rule_id: str | None = None):
        super().__init__(message, location=location, hint=hint)
        self.rule_id = rule_id

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        rid = f"[{self.rule_id}] " if self.rule_id else ""
        text = f"{where}{rid}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class RuleLoadError(PipelineError):
    """Rule files failed to load; ``problems`` holds every problem found, in file order."""

    def __init__(self, problems: list[RuleError]):
        super().__init__(f"{len(problems)} problem(s) in rule files")
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class SourceError(PipelineError):
    """An input source cannot be read at all (missing file, unknown format, unreadable header)."""


class StoreError(PipelineError):
    """The case store or the retained log store refused an operation."""


class QueryError(PipelineError):
    """A regulator's query is malformed or refused."""


class UnavailableError(PipelineError):
    """A service the command needs (the Dask scheduler, the PostgreSQL case store) is unreachable."""

    exit_code = 69  # EX_UNAVAILABLE


class StoreUnavailable(StoreError):
    """The case store's database server cannot be reached."""

    exit_code = 69  # EX_UNAVAILABLE


class DiskError(PipelineError):
    """A write failed for want of space or an I/O error; what was written is rolled back."""

    exit_code = 74  # EX_IOERR
