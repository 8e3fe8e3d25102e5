"""Filing, operating-licence and public-security numbers: every form valid and invalid."""

from __future__ import annotations

import pytest

from pipeline.licensing.numbers import (
    PROVINCES,
    NumberError,
    canonical_filing,
    filing_problem,
    parse_filing,
    parse_operating_licence,
    parse_security_filing,
)


@pytest.mark.parametrize("text, site, kind, main", [
    ("浙ICP备12345678号", None, "site", "浙ICP备12345678号"),
    ("京ICP备1234567890号", None, "site", "京ICP备1234567890号"),
    ("沪ICP备123456789号-1", 1, "site", "沪ICP备123456789号"),
    ("粤ICP备12345678号-12", 12, "site", "粤ICP备12345678号"),
    ("苏ICP备12345678号-3A", 3, "app", "苏ICP备12345678号"),
    ("川ICP备12345678号-2X", 2, "mini_program", "川ICP备12345678号"),
    ("蜀ICP备12345678号-2", 2, "site", "川ICP备12345678号"),          # alternate abbreviation folds
    ("黔ICP备12345678号", None, "site", "贵ICP备12345678号"),
    ("滇ICP备12345678号-1", 1, "site", "云ICP备12345678号"),
    ("陇ICP备12345678号-1", 1, "site", "甘ICP备12345678号"),
    ("  浙ICP备１２３４５６７８号－１ ", 1, "site", "浙ICP备12345678号"),  # full-width and spaces fold
])
def test_valid_filing_numbers(text: str, site: int | None, kind: str, main: str) -> None:
    n = parse_filing(text)
    assert (n.site, n.kind, n.main) == (site, kind, main)
    assert filing_problem(text) is None


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("ICP备12345678号", "province"),
    ("港ICP备12345678号", "province"),
    ("浙ICP备1234567号", "malformed"),          # 7 digits
    ("浙ICP备12345678901号", "malformed"),      # 11 digits
    ("浙ICP备12345678", "malformed"),           # no 号
    ("浙ICP备12345678号-", "malformed"),
    ("浙ICP备12345678号-0", "malformed"),
    ("浙ICP备12345678号-1B", "malformed"),
    ("浙ICP证12345678号", "malformed"),          # an operating licence is not a filing
    ("浙ICP备12a45678号", "malformed"),
])
def test_invalid_filing_numbers(text: str, why: str) -> None:
    with pytest.raises(NumberError, match=why):
        parse_filing(text)
    assert filing_problem(text)


def test_canonical_filing_round_trips() -> None:
    assert canonical_filing("蜀ICP备12345678号-2A") == "川ICP备12345678号-2A"
    assert canonical_filing("浙ICP备12345678号") == "浙ICP备12345678号"


def test_every_province_and_alternate_is_accepted() -> None:
    assert len(set(PROVINCES.values())) == 31
    for p in PROVINCES:
        assert parse_filing(f"{p}ICP备12345678号").province == PROVINCES[p]


@pytest.mark.parametrize("text, form, province", [
    ("京ICP证000007号", "ICP证", "京"),
    ("浙ICP证1234567号", "ICP证", "浙"),
    ("浙B2-20080224", "B2", "浙"),
    ("B2-20080224", "B2", None),
    ("滇B2-20080224", "B2", "云"),
])
def test_valid_operating_licences(text: str, form: str, province: str | None) -> None:
    lic = parse_operating_licence(text)
    assert (lic.form, lic.province) == (form, province)


@pytest.mark.parametrize("text", ["浙ICP证12345号", "浙ICP证000007", "B2-2008022", "B2-200802245", "浙B220080224",
                                  "港B2-20080224", "浙ICP备12345678号", "B1-20080224", ""])
def test_invalid_operating_licences(text: str) -> None:
    with pytest.raises(NumberError):
        parse_operating_licence(text)


@pytest.mark.parametrize("text", ["浙公网安备 33010602000123号", "浙公网安备33010602000123号", "蜀公网安备 51010402000123号"])
def test_valid_security_filings(text: str) -> None:
    assert len(parse_security_filing(text).serial) == 14


@pytest.mark.parametrize("text", ["浙公网安备 3301060200012号", "浙公网安备 330106020001234号", "公网安备 33010602000123号",
                                  "浙公网安备 33010602000123", "浙公安备 33010602000123号"])
def test_invalid_security_filings(text: str) -> None:
    with pytest.raises(NumberError):
        parse_security_filing(text)
