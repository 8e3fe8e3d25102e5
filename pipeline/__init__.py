"""Compliance and content-policy checking pipeline: sources → rules → cases → enforcement."""

__version__ = "0.1.0"

# Numba caches compiled kernels beside their modules, or in the user's cache folder. When neither
# is writable (an installed package run by a service account without a home), it would refuse to
# compile them: give it a cache folder of this user's under the temporary directory instead.
def _numba_cache_fallback() -> None:
    import os
    import tempfile

    if "NUMBA_CACHE_DIR" in os.environ or os.access(os.path.dirname(__file__), os.W_OK):
        return
    home = os.path.expanduser("~")
    if os.path.isdir(home) and os.access(home, os.W_OK):
        return
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"compliance-numba-{os.getuid()}")


_numba_cache_fallback()


# Most buffers here are large and short-lived (a file's columns, a day's partition, a run's hits).
# Advised as transparent huge pages, every fresh 2 MiB page is zeroed, and memory compacted to find
# it, on first touch: profiled, a quarter of `compliance logs ingest`'s CPU time was the kernel
# zeroing such pages, and it varied several-fold between identical runs. NumPy advises them by
# default and so does pyarrow's allocator (mimalloc); each reads its setting once, when it is first
# loaded, so it is set here, before either is imported. A setting of the user's own wins.
def _no_huge_page_advice() -> None:
    import os

    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")


_no_huge_page_advice()
