"""Shared fixtures: the repo root, the shared corpus, and a real Dask LocalCluster of worker processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
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
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({reason}); start it (pg_ctlcluster 15 main start) "
                    "or set COMPLIANCE_TEST_POSTGRES to a server's URL to run these tests")
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
