"""The terminal filter: nothing from a hostile file can act on the terminal."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from intake.cli.terminal import terminal_safe


def test_escape_sequences_are_shown_not_sent():
    assert terminal_safe("\x1b[2K\rReviewer") == "\\x1b[2K\\x0dReviewer"


def test_osc_52_clipboard_and_window_title_are_inert():
    clipboard = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
    title = "\x1b]0;innocent\x07"
    assert "\x1b" not in terminal_safe(clipboard) and "\x07" not in terminal_safe(clipboard)
    assert terminal_safe(title) == "\\x1b]0;innocent\\x07"


def test_c1_controls_bidi_and_zero_width_are_visible():
    assert terminal_safe("\x9b2J") == "\\x9b2J"  # CSI without ESC
    assert terminal_safe("photo\u202egpj.exe") == "photo\\u202egpj.exe"
    assert terminal_safe("a\u200bb\u2066c") == "a\\u200bb\\u2066c"
    assert terminal_safe("line\u2028sep") == "line\\u2028sep"


def test_ordinary_text_in_every_script_is_unchanged():
    text = "مُحَمَّد reported: «Pegasus» on 2026-03 — été, گزارش ۱۴۰۲"
    assert terminal_safe(text) == text


def test_newlines_kept_only_when_asked_and_never_carriage_returns():
    assert terminal_safe("a\nb") == "a\\x0ab"
    assert terminal_safe("a\r\nb", keep_newlines=True) == "a\\x0d\nb"


@given(st.text())
def test_no_control_character_survives(text):
    for keep in (False, True):
        shown = terminal_safe(text, keep_newlines=keep)
        for ch in shown:
            if keep and ch == "\n":
                continue
            assert unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
