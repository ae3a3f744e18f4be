"""Passphrases that protect key files: how hard one is to guess, and a strong one made here.

A reviewer identity or an admin signing key is only as safe as its
passphrase once the file is copied (a seized laptop, a lost USB stick): the
file's scrypt work factor slows each guess, but a short or common passphrase
falls all the same. So a **new** passphrase must be at least as hard to guess
as six words drawn at random from the EFF large word list (6 × 12.9 ≈ 77.5
bits): `check_new_passphrase` refuses anything estimated below `MIN_BITS`.

The estimate is the lower of two:

- zxcvbn's (``guesses``): dictionaries, names, keyboard patterns, dates,
  repeats and l33t, the way an attacker who knows how people choose;
- a word-list bound: a passphrase made only of words from one of the EFF
  lists (with separators and any capitals) is worth no more than
  ``log2(len(list))`` bits a word to an attacker who tries that list. zxcvbn
  does not know these lists and rates five EFF words above 77 bits; this bound
  puts them at 64.6, where they belong.

`generate_passphrase` draws `GENERATED_WORDS` words with `secrets` from the
EFF large list (7,776 words, 12.9 bits each: 90.5 bits for seven). The lists
come from the ``xkcdpass`` package, which ships them; the large list is
checked against its published content (`EFF_LARGE_SHA256`) before use, so a
changed or truncated copy is refused instead of silently weakening every
generated passphrase. Old key files are never checked: only new ones.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
from importlib.resources import files

from zxcvbn import zxcvbn

from intake.errors import IdentityError

#: The strength a new passphrase needs: that of six words from the EFF large list.
MIN_BITS = 77
#: Words in a generated passphrase: 7 × log2(7776) ≈ 90.5 bits, with room to spare.
GENERATED_WORDS = 7
WORD_LIST_NAME = "the EFF large word list (7,776 words)"
#: SHA-256 of the EFF large list's 7,776 words, sorted, one per line, each line ending in "\n".
EFF_LARGE_SHA256 = "6d557f0693958fb5e650b68b5bee585eb82cf4da32965505c789e924743bc522"
EFF_LARGE_SIZE = 7776
#: The word lists an attacker would try first, as named inside the xkcdpass package.
_EFF_LISTS = ("eff-long", "eff-short", "eff-special")
#: zxcvbn's matching grows fast with length (0.15 s at 72 characters, 0.9 s at 200):
#: only this many leading characters are given to it, which can only lower the estimate.
_ZXCVBN_PREFIX = 100
#: What separates words in a passphrase: spaces, dashes, dots and the like.
_SEPARATORS = frozenset(" -_.,;:/+*=~|")
#: Words guessed first in any attack on this deployment's keys.
_CONTEXT_WORDS = ("intake", "reviewer", "admin", "identity", "passphrase", "age", "key")


@functools.cache
def word_list(name: str = "eff-long") -> tuple[str, ...]:
    """The words of one of the EFF lists shipped by xkcdpass, in their order."""
    try:
        text = files("xkcdpass").joinpath("static", name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, UnicodeDecodeError):
        raise IdentityError(
            f"The word list {name} is missing from the xkcdpass package; reinstall intake."
        ) from None
    words = tuple(line.strip() for line in text.splitlines() if line.strip())
    if name == "eff-long":
        digest = hashlib.sha256("".join(w + "\n" for w in sorted(words)).encode()).hexdigest()
        if len(words) != EFF_LARGE_SIZE or digest != EFF_LARGE_SHA256:
            raise IdentityError(
                "The EFF large word list installed with xkcdpass is not the published one; "
                "reinstall intake from a trusted copy."
            )
    return words


def generate_passphrase(words: int = GENERATED_WORDS) -> str:
    """`words` words from the EFF large list, each drawn with `secrets`, joined by spaces."""
    vocabulary = word_list("eff-long")
    return " ".join(secrets.choice(vocabulary) for _ in range(words))


def generated_bits(words: int = GENERATED_WORDS) -> float:
    """The exact strength of a generated passphrase, by construction."""
    return words * math.log2(EFF_LARGE_SIZE)


def _fewest_list_words(text: str, vocabulary: frozenset[str], longest: int) -> int | None:
    """The fewest words of `vocabulary` that spell `text` between separators, or None."""
    best: list[int | None] = [0] + [None] * len(text)
    for end in range(1, len(text) + 1):
        candidates = []
        previous = best[end - 1]
        if text[end - 1] in _SEPARATORS and previous is not None:
            candidates.append(previous)
        for start in range(max(0, end - longest), end):
            before = best[start]
            if before is not None and text[start:end] in vocabulary:
                candidates.append(before + 1)
        best[end] = min(candidates) if candidates else None
    return best[-1]


def _word_list_bits(passphrase: str) -> float:
    """The strength of `passphrase` to an attacker who tries the EFF lists (inf if none fits)."""
    text = passphrase.strip().lower()
    if not re.fullmatch(r"[a-z \-_.,;:/+*=~|]+", text):
        return math.inf
    lowest = math.inf
    for name in _EFF_LISTS:
        vocabulary = word_list(name)
        count = _fewest_list_words(text, frozenset(vocabulary), max(map(len, vocabulary)))
        if count is not None:
            lowest = min(lowest, count * math.log2(len(vocabulary)))
    return lowest


def _zxcvbn_bits(passphrase: str, context: tuple[str, ...]) -> float:
    result = zxcvbn(
        passphrase[:_ZXCVBN_PREFIX],
        user_inputs=[*_CONTEXT_WORDS, *context],
        max_length=_ZXCVBN_PREFIX,
    )
    return float(result["guesses_log10"]) * math.log2(10)


def estimate_bits(passphrase: str, context: tuple[str, ...] = ()) -> float:
    """Roughly how many bits of guessing `passphrase` resists (see the module docstring).

    `context` holds words an attacker would try first for this key: its file
    name, its label.
    """
    if not passphrase:
        return 0.0
    return min(_zxcvbn_bits(passphrase, context), _word_list_bits(passphrase))


def check_new_passphrase(
    passphrase: str, *, context: tuple[str, ...] = (), where: str = ""
) -> None:
    """Refuse a passphrase weaker than six random words, saying what to do instead.

    `where` names the passphrase's origin in the message ("in p.txt").
    """
    origin = f" {where}" if where else ""
    if not passphrase:
        raise IdentityError(
            f"The passphrase{origin} is empty; use seven random words, or let "
            "`--generate-passphrase` choose them."
        )
    bits = estimate_bits(passphrase, context)
    if bits < MIN_BITS:
        raise IdentityError(
            f"The passphrase{origin} is too easy to guess (about {int(bits)} bits; at least "
            f"{MIN_BITS} are needed, as many as six random words give): use seven random words, "
            "or let `--generate-passphrase` choose them."
        )
