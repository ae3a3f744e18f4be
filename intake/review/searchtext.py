"""Text folded for full-text search in Arabic, Persian, French and English.

SQLite's FTS5 tokenizer sees Arabic vowel marks as word breaks and knows
nothing of letter variants, so a search for محمد would miss مُحَمَّد. The case
store therefore folds text here, in Python, in exactly the same way when it
indexes a case and when it reads a query (`fold`), and hands FTS5 only the
folded text. Folding:

- NFKC (Arabic presentation forms and full-width Latin to their plain letters);
- case folding (Latin, Greek, Cyrillic);
- every combining mark removed after canonical decomposition: Latin accents
  (é → e), Arabic harakat (fatha, damma, kasra, tanwin, shadda, sukun,
  superscript alef) and the hamza or madda carried above or below a letter,
  which folds أ إ آ to ا (and ؤ to و, ئ to ي, ۀ to ه);
- tatweel (ـ) and every format character (bidi controls, zero-width joiners,
  the Persian half-space ZWNJ) removed;
- ٱ to ا, ى to ي, ة to ه; Persian ی to Arabic ي and Persian ک to Arabic ك;
- Arabic-Indic and Persian digits to ASCII.

`fts_query` turns what a reviewer typed into an FTS5 query that cannot be
an FTS5 syntax error: each word a quoted prefix term, all of them required.
"""

from __future__ import annotations

import unicodedata

from intake.schema import normalise_digits

#: Letters folded to one form; applied after the marks are gone.
_LETTERS = str.maketrans({
    "\u0671": "\u0627",  # ٱ alef wasla -> ا
    "\u0649": "\u064a",  # ى alef maksura -> ي
    "\u0629": "\u0647",  # ة teh marbuta -> ه
    "\u06cc": "\u064a",  # ی Persian yeh -> ي
    "\u06a9": "\u0643",  # ک Persian keheh -> ك
    "\u06d5": "\u0647",  # ە ae (what ۀ leaves once its hamza is gone) -> ه
    "\u0640": None,      # ـ tatweel
})
#: Characters that are removed whatever their category says.
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
#: Bound on a query: longer input is cut (nobody types more into a search box).
MAX_QUERY = 500
#: Bound on the words of a query: each becomes one FTS5 term.
MAX_QUERY_WORDS = 20


def fold(text: str) -> str:
    """`text` folded for search (see the module docstring); idempotent."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    return normalise_digits(kept.translate(_LETTERS))


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for `text`, or None if it has no word to search for.

    Every whitespace-separated word is folded and quoted (a double quote
    inside is doubled, so no word is FTS5 syntax) and matched as a prefix;
    all words must occur in a case.
    """
    words = [w for w in fold(text[:MAX_QUERY]).split() if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words[:MAX_QUERY_WORDS])
