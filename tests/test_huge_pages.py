"""Large buffers get ordinary pages, not transparent huge pages (``pipeline/__init__.py``): in the
process that imports the package first, in the Dask worker processes it starts, and not when the
user set the advice on."""

from __future__ import annotations

import os
import subprocess
import sys

ADVICE = ("NUMPY_MADVISE_HUGEPAGE", "MIMALLOC_ALLOW_THP")

# numpy's advice as it reads it; pyarrow's allocator prints its options when verbose
PROBE = """
import pipeline, numpy, pyarrow
from numpy._core.multiarray import _get_madvise_hugepage
pyarrow.array([1])
print("numpy advises huge pages:", _get_madvise_hugepage())
"""

WORKER_PROBE = """
import pipeline
from distributed import Client, LocalCluster

def advice():
    import os
    from numpy._core.multiarray import _get_madvise_hugepage
    return _get_madvise_hugepage(), os.environ.get("MIMALLOC_ALLOW_THP")

if __name__ == "__main__":
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \\
            Client(cluster) as client:
        (pid, got), = client.run(advice).items()
        print("worker:", got)
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ADVICE}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**clean, "MIMALLOC_VERBOSE": "1", **env})


def test_importing_the_package_first_turns_off_both_advices() -> None:
    res = _run(PROBE)
    assert res.returncode == 0, res.stderr
    assert "numpy advises huge pages: False" in res.stdout
    assert "option 'allow_thp': 0" in res.stderr


def test_a_setting_of_the_users_own_wins() -> None:
    res = _run(PROBE, NUMPY_MADVISE_HUGEPAGE="1", MIMALLOC_ALLOW_THP="1")
    assert res.returncode == 0, res.stderr
    assert "numpy advises huge pages: True" in res.stdout
    assert "option 'allow_thp': 1" in res.stderr


def test_a_dask_worker_process_has_the_advice_off_too(tmp_path) -> None:
    script = tmp_path / "probe.py"   # a file: worker processes are spawned and import __main__
    script.write_text(WORKER_PROBE, encoding="utf-8")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180,
                         env={k: v for k, v in os.environ.items() if k not in ADVICE})
    assert res.returncode == 0, res.stderr
    assert "worker: (False, '0')" in res.stdout
