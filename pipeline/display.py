"""Customer-supplied text made safe to show: control characters escaped, so that an object key
holding a newline, a carriage return or a terminal escape cannot forge lines in a table, a plan,
a notice or a terminal."""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, DEL, and the bidirectional overrides / isolates that reorder what is shown.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: Any) -> str:
    """``value`` as text with every control character escaped (``\\n``, ``\\x1b``, ``\\u202e``)."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(_escape, text)


def shown_bytes(raw: bytes | None) -> str:
    """Raw quarantined bytes shown as text: UTF-8 where it decodes, ``\\xNN`` where not, controls escaped."""
    if not raw:
        return ""
    text = bytes(raw).decode("utf-8", "backslashreplace")
    return shown(text)


def safe_cells(*cells: Any) -> tuple[Any, ...]:
    """Table cells as plain rich Text with control characters escaped: customer text is neither
    markup (``[bold]``) nor line breaks."""
    from rich.text import Text

    return tuple(Text(shown(c)) for c in cells)


def safe_console(**options: Any) -> Any:
    """A rich Console whose ``print`` escapes control characters in the strings it is given
    (each call prints one line of ours; a newline inside customer text must not start another)."""
    from rich.console import Console

    class _SafeConsole(Console):
        def print(self, *objects: Any, **kw: Any) -> None:  # type: ignore[override]
            super().print(*(shown(o) if isinstance(o, str) else o for o in objects), **kw)

    return _SafeConsole(**options)
