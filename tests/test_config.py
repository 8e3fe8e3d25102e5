from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "rules: myrules\nsources:\n  objects:\n    - {path: data/a.csv, format: csv}\n"))
    assert s.rules_dir == str(tmp_path / "myrules")
    assert s.state_path == tmp_path / ".compliance"
    assert s.sources.objects[0].format == "csv"
    assert s.resolve("s3://bucket/x") == "s3://bucket/x"
    assert s.dask.workers == 2 and s.retention.days == 180


def test_unknown_key_names_key_place_and_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "rules: rules\ndask:\n  workers: 2\n  schedular: local\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    msg = str(exc.value)
    assert "dask.schedular" in msg and f"{path}:4:3" in msg and "scheduler" in msg


def test_unknown_key_in_source_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  objects:\n    - {path: a.csv, fromat: csv}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "fromat" in str(exc.value) and "format" in str(exc.value)


def test_mistyped_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "dask:\n  workers: many\n"))
    assert "dask.workers" in str(exc.value)


def test_environment_overrides(tmp_path: Path) -> None:
    env = {"COMPLIANCE_DASK__WORKERS": "4", "COMPLIANCE_STATE_DIR": "/var/tmp/x", "DASK_SCHEDULER_ADDRESS": "",
           "COMPLIANCE_TEST_REQUIRE": "postgres", "COMPLIANCE_CONFIG": "elsewhere.yaml"}   # these two are no settings
    s = load_settings(write(tmp_path, "dask:\n  workers: 2\n"), environ=env)
    assert s.dask.workers == 4 and s.state_dir == "/var/tmp/x"


def test_bad_environment_override_is_blamed_on_the_variable_not_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "rules: rules\ndask:\n  workers: 1\n")
    with pytest.raises(ConfigError) as bad_value:
        load_settings(cfg, environ={"COMPLIANCE_DASK__WORKERS": "abc"})
    assert str(bad_value.value).startswith("environment variable COMPLIANCE_DASK__WORKERS: setting 'dask.workers'")
    with pytest.raises(ConfigError) as unknown:
        load_settings(cfg, environ={"COMPLIANCE_NOPE__X": "2"})
    assert str(unknown.value).startswith("environment variable COMPLIANCE_NOPE__X: unknown setting 'nope'")
    with pytest.raises(ConfigError) as in_file:   # the same mistake in the file is placed in the file
        load_settings(write(tmp_path, "dask:\n  workers: abc\n"), environ={})
    assert str(in_file.value).startswith(f"{tmp_path / 'config.yaml'}:2:3:")


def test_scheduler_address_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(write(tmp_path, "dask:\n  scheduler: local\n"))
    assert s.scheduler_address is None
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.1:8786")
    assert s.scheduler_address == "tcp://10.0.0.1:8786"


def test_bad_yaml_has_location(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "dask: [\n"))
    assert "config.yaml:" in str(exc.value)
