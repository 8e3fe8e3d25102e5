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
