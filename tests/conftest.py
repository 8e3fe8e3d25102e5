"""Shared fixtures: the repo root, the shared corpus, a real Dask LocalCluster of worker processes,
and PostgreSQL schemas; plus the guard that keeps CI from passing on skipped tests.

Locally the PostgreSQL and corpus tests skip (saying how to run them) where the server or
`../shared/corpus` is missing. With COMPLIANCE_TEST_REQUIRE=postgres,corpus (CI sets it) they fail
instead, and any skip whose reason is not one of PLATFORM_SKIPS fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"

# Read once at import: the autouse fixture below clears COMPLIANCE_* variables inside each test.
REQUIRED = frozenset(filter(None, (s.strip() for s in os.environ.get("COMPLIANCE_TEST_REQUIRE", "").split(","))))
KNOWN_REQUIREMENTS = frozenset({"postgres", "corpus"})
# The only skips allowed under COMPLIANCE_TEST_REQUIRE: facts of the platform, not of the project.
PLATFORM_SKIPS = (
    "installed Unicode database or opencc differ",   # the folding table is checked against its build inputs
)


def unavailable(what: str, message: str) -> None:
    """Skip, or fail when this requirement is set in COMPLIANCE_TEST_REQUIRE."""
    if what in REQUIRED:
        pytest.fail(f"{message} (required by COMPLIANCE_TEST_REQUIRE={','.join(sorted(REQUIRED))})", pytrace=False)
    pytest.skip(f"{message}; skipped here (COMPLIANCE_TEST_REQUIRE={what} makes this a failure, as in CI)")


def pytest_configure(config: pytest.Config) -> None:
    unknown = REQUIRED - KNOWN_REQUIREMENTS
    if unknown:
        raise pytest.UsageError(f"COMPLIANCE_TEST_REQUIRE: unknown {sorted(unknown)}; known: {sorted(KNOWN_REQUIREMENTS)}")


_SKIPS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(p in reason for p in PLATFORM_SKIPS):
            _SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRED and _SKIPS and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REQUIRED and _SKIPS:
        terminalreporter.section("skips not allowed under COMPLIANCE_TEST_REQUIRE", red=True)
        for line in _SKIPS:
            terminalreporter.line(line)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        unavailable("corpus", f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def dask_client():
    """One LocalCluster of 2 single-threaded worker processes for the whole session."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("COMPLIANCE_") or name == "DASK_SCHEDULER_ADDRESS":
            monkeypatch.delenv(name, raising=False)
    # distributed's Nanny writes a fixed PYTHONHASHSEED into this process's environment; without
    # this, every CLI subprocess started after the shared cluster would inherit it, and anything
    # that leaned on Python's salted hash() would look stable across runs.
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)


PG_URL = os.environ.get("COMPLIANCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no server to test against here
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _postgres_schema() -> object:
    """A URL of a fresh schema on the test server (dropped after), or a skip saying how to get one."""
    reason = _postgres_available()
    if reason is not None:
        unavailable("postgres", f"PostgreSQL not reachable at {PG_URL} ({reason}); start it (pg_ctlcluster 15 main "
                    "start) or set COMPLIANCE_TEST_POSTGRES to a server's URL")
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A fresh, empty case store URL on each engine (PostgreSQL: a schema of its own, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.db'}"
        return
    yield from _postgres_schema()  # type: ignore[misc]


@pytest.fixture()
def postgres_url() -> object:
    """A fresh schema on the PostgreSQL test server."""
    yield from _postgres_schema()  # type: ignore[misc]
