"""A Sigma rule's own metadata as the lines a case shows (the DRL asks that authors be credited)."""

from __future__ import annotations

from typing import Any

ATTRIBUTION = ("Detection rules by the SigmaHQ project and their authors (https://github.com/SigmaHQ/sigma), "
               "licensed under the Detection Rule License 1.1")


def _join(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def case_lines(meta: dict[str, Any]) -> list[str]:
    """``meta``: a converted rule's ``meta["sigma"]``. One "label  text" line per item it has."""
    head = " ".join(x for x in (str(meta.get("id") or ""), f"level {meta['level']}" if meta.get("level") else "",
                                f"status {meta['status']}" if meta.get("status") else "") if x)
    out = [f"sigma     {head}"] if head else []
    for key, label in (("author", "author"), ("references", "refs"), ("tags", "tags"),
                       ("falsepositives", "fp")):
        if meta.get(key):
            out.append(f"  {label:8s}{_join(meta[key])}")
    if out:
        out.append(f"  licence {ATTRIBUTION}")
    return out
