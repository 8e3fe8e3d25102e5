"""The package's type hints hold: mypy (configured in pyproject.toml) finds no error."""

from pathlib import Path


def test_mypy_finds_no_error(root: Path) -> None:
    from mypy import api

    out, err, status = api.run(["--config-file", str(root / "pyproject.toml"), str(root / "pipeline")])
    assert status == 0, out + err
