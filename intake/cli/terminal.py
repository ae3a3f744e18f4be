"""The one filter between hostile text and the reviewer's or admin's terminal.

Anything that came from a report, a manifest, a keyring or any other file an
adversary may have written goes through `terminal_safe` before it is printed.
A terminal obeys control sequences in what it prints: ESC and CSI sequences
move the cursor and erase lines (a key listed by `intake keys sign` could hide
itself), C1 controls do the same without ESC, OSC 52 writes the clipboard and
OSC 0 sets the window title; bidi controls reorder the line around them and
zero-width characters hide text. The filter shows every such character as a
visible escape (``\\x1b``, ``\\u202e``) instead of sending it.

Escaped: Unicode category C (controls, format characters including the bidi
controls, surrogates, private use, unassigned) and the line and paragraph
separators. With ``keep_newlines=True`` a line feed is kept (a narrative's
lines), every other control is still escaped, carriage returns included.
"""

from __future__ import annotations

import unicodedata

#: Categories a terminal may act on or that hide text: Cc, Cf, Cs, Co, Cn; Zl, Zp.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_safe(value: object, *, keep_newlines: bool = False) -> str:
    """`value` as text a terminal only displays: every control made a visible escape."""
    text = value if isinstance(value, str) else str(value)
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif unicodedata.category(ch) in _ESCAPED_CATEGORIES:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)
