"""The text of the terms of service's clauses, so that a case page can quote the clause its rule
cites ("§3.1.3.5.4", the way the CLI and the notices cite clauses). The terms ship with the package
(pipeline/data/terms-of-service.zh.txt)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

# a numbered line of the terms: "14. 3.1.3.5.4" or "1. 3.权利义务" (a heading with its number)
_NUMBERED = re.compile(r"^\d+\.\s+(?:\[[^\]]*\])?(\d+(?:\.\d+)*)\.?(.*)$")


@lru_cache(maxsize=1)
def clauses() -> dict[str, str]:
    """clause number → its text (a heading's title when the clause is a heading)."""
    text = resources.files("pipeline").joinpath("data/terms-of-service.zh.txt").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _NUMBERED.match(line.strip())
        if m:
            if current is not None:
                out[current] = "\n".join(body).strip()
            current, body = m.group(1), [m.group(2).strip()] if m.group(2).strip() else []
        elif current is not None and line.strip():
            body.append(line.strip())
    if current is not None:
        out[current] = "\n".join(body).strip()
    return out


def clause_text(number: str | None) -> str | None:
    """The clause's text, or None when the terms have no such clause."""
    if not number:
        return None
    return clauses().get(str(number).lstrip("§").strip())


def cite(number: str | None) -> str:
    return f"§{number}" if number else ""
