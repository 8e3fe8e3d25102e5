"""Formats of ICP filing numbers, operating-licence numbers and public-security filing numbers.

Each ``parse_*`` returns the parts of a well-formed number, or raises ``NumberError`` whose
message says what is wrong (the reason a record is quarantined or a declaration is a finding).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Province abbreviations; where a province has two, both are accepted and folded to the first.
PROVINCES: dict[str, str] = {p: p for p in "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新"}
PROVINCES.update({"蜀": "川", "黔": "贵", "滇": "云", "陇": "甘"})
_P = "[" + "".join(PROVINCES) + "]"

_FILING = re.compile(rf"^(?P<prov>{_P})ICP备(?P<serial>\d{{8,10}})号(?:-(?P<site>[1-9]\d{{0,3}})(?P<kind>[AX])?)?$")
_OPERATING = re.compile(rf"^(?:(?P<prov>{_P})ICP证(?P<icp>\d{{6,10}})号|(?P<bprov>{_P})?B2-(?P<b2>\d{{8}}))$")
_SECURITY = re.compile(rf"^(?P<prov>{_P})公网安备 ?(?P<serial>\d{{14}})号$")
SITE_KINDS = {None: "site", "A": "app", "X": "mini_program"}


class NumberError(ValueError):
    """A number that does not have the form its kind requires; the message is the reason."""


@dataclass(frozen=True)
class FilingNumber:
    """浙ICP备12345678号-2A: the entity's number, and optionally one filed site / app / mini-program."""

    province: str          # folded to the first abbreviation (蜀 → 川)
    serial: str
    site: int | None       # the -n suffix; None for the entity's own (main) number
    kind: str              # site | app | mini_program

    @property
    def main(self) -> str:
        """The entity-level number this one extends (mainLicence)."""
        return f"{self.province}ICP备{self.serial}号"

    def __str__(self) -> str:
        if self.site is None:
            return self.main
        suffix = {"site": "", "app": "A", "mini_program": "X"}[self.kind]
        return f"{self.main}-{self.site}{suffix}"


@dataclass(frozen=True)
class OperatingLicence:
    """浙ICP证000123号, 浙B2-20080224 or B2-20080224."""

    province: str | None
    form: str              # "ICP证" or "B2"
    serial: str


@dataclass(frozen=True)
class SecurityFiling:
    """浙公网安备 33010602000123号."""

    province: str
    serial: str


def clean(text: str) -> str:
    """Full-width letters, digits and hyphens folded (NFKC); surrounding space removed."""
    return unicodedata.normalize("NFKC", text).strip()


def _why(text: str, kind: str, form: str) -> NumberError:
    if not text:
        return NumberError(f"{kind} is empty")
    if text[0] not in PROVINCES and not (kind == "operating licence" and text.startswith("B2")):
        return NumberError(f"{kind} {text!r} does not start with a province abbreviation (expected {form})")
    return NumberError(f"{kind} {text!r} is malformed (expected {form})")


def parse_filing(text: str) -> FilingNumber:
    """An ICP filing number: ``<province>ICP备<8-10 digits>号`` with optional ``-n``, ``-nA``, ``-nX``."""
    t = clean(text)
    m = _FILING.match(t)
    if m is None:
        raise _why(t, "filing number", "<province>ICP备<8-10 digits>号[-n|-nA|-nX]")
    site = m.group("site")
    return FilingNumber(PROVINCES[m.group("prov")], m.group("serial"), int(site) if site else None,
                        SITE_KINDS[m.group("kind")])


def parse_operating_licence(text: str) -> OperatingLicence:
    """An operating licence: ``<province>ICP证<digits>号``, ``<province>B2-<8 digits>`` or ``B2-<8 digits>``."""
    t = clean(text)
    m = _OPERATING.match(t)
    if m is None:
        raise _why(t, "operating licence", "<province>ICP证<digits>号, <province>B2-<8 digits> or B2-<8 digits>")
    if m.group("icp"):
        return OperatingLicence(PROVINCES[m.group("prov")], "ICP证", m.group("icp"))
    prov = m.group("bprov")
    return OperatingLicence(PROVINCES[prov] if prov else None, "B2", m.group("b2"))


def parse_security_filing(text: str) -> SecurityFiling:
    """A public-security filing: ``<province>公网安备 <14 digits>号`` (the space may be missing)."""
    t = clean(text)
    m = _SECURITY.match(t)
    if m is None:
        raise _why(t, "public-security filing", "<province>公网安备 <14 digits>号")
    return SecurityFiling(PROVINCES[m.group("prov")], m.group("serial"))


def filing_problem(text: str) -> str | None:
    """Why ``text`` is not a filing number, or None when it is one."""
    try:
        parse_filing(text)
    except NumberError as exc:
        return str(exc)
    return None


def canonical_filing(text: str) -> str:
    """The number written the one way (province folded, full-width folded); raises NumberError."""
    return str(parse_filing(text))
