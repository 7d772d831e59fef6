"""Showing text that came from users: every character that could steer a terminal is escaped.

Ledger data is stored as given and never interpreted; this is the one place that turns it into
something safe to print in the CLI or the TUI. Control characters (C0, DEL, C1, including ESC and
NUL), bidirectional overrides and isolates, and line/paragraph separators become visible escapes;
a backslash is doubled so an escape in the output always means an escaped character.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

__all__ = ["escape_for_display"]


def escape_for_display(text: str, *, max_chars: int | None = None) -> str:
    """Return `text` with control, bidi and separator characters shown as escapes.

    `max_chars` cuts the *result* to that many characters and marks the cut with an ellipsis;
    an escape is never split.
    """
    out: list[str] = []
    length = 0
    for ch in text:
        piece = _escape_char(ch)
        if max_chars is not None and length + len(piece) > max_chars:
            out.append("…")
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if ch in _BIDI or unicodedata.category(ch) in ("Zl", "Zp", "Cs", "Co", "Cn"):
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return ch
