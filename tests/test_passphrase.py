"""Passphrase strength and generation: six diceware words or better, by estimate or by making."""

from __future__ import annotations

import math
import secrets

import pytest
from zxcvbn import zxcvbn

from intake.crypto import passphrase
from intake.errors import IdentityError


def random_eff_words(count: int) -> str:
    return " ".join(secrets.choice(passphrase.word_list()) for _ in range(count))


def test_the_word_list_is_the_eff_large_list_of_7776_distinct_words():
    words = passphrase.word_list("eff-long")
    assert len(words) == len(set(words)) == 7776
    assert words[0] == "abacus" and words[-1] == "zoom"
    assert math.isclose(passphrase.generated_bits(), 7 * math.log2(7776))
    assert passphrase.generated_bits() > 90


def test_a_generated_passphrase_is_seven_words_of_the_list_and_never_repeats():
    made = {passphrase.generate_passphrase() for _ in range(50)}
    assert len(made) == 50
    vocabulary = set(passphrase.word_list())
    for phrase in made:
        words = phrase.split(" ")
        assert len(words) == 7 and set(words) <= vocabulary
        passphrase.check_new_passphrase(phrase)


@pytest.mark.parametrize(
    "five", ["reversal speed prize diaphragm dinner", "crumb unfold skirmish gab concave"]
)
def test_five_eff_words_are_refused_although_zxcvbn_alone_rates_them_above_77_bits(five):
    assert math.log2(zxcvbn(five)["guesses"]) >= 77  # why the word-list bound exists
    assert passphrase.estimate_bits(five) == pytest.approx(5 * math.log2(7776))
    with pytest.raises(IdentityError, match="too easy to guess"):
        passphrase.check_new_passphrase(five)


def test_six_random_eff_words_pass_and_five_do_not():
    for _ in range(20):
        passphrase.check_new_passphrase(random_eff_words(6))
        with pytest.raises(IdentityError, match="too easy to guess"):
            passphrase.check_new_passphrase(random_eff_words(5))


@pytest.mark.parametrize(
    "disguise", [str.upper, str.title, lambda p: p.replace(" ", "-"), lambda p: p.replace(" ", "")]
)
def test_capitals_and_separators_add_nothing_to_five_eff_words(disguise):
    five = random_eff_words(5)
    assert passphrase.estimate_bits(disguise(five)) <= 5 * math.log2(7776) + 1e-9


def test_short_eff_list_words_count_at_their_own_list_size():
    short = passphrase.word_list("eff-short")
    eight = " ".join(secrets.choice(short) for _ in range(8))
    assert passphrase.estimate_bits(eight) <= 8 * math.log2(len(short)) + 1e-9


@pytest.mark.parametrize("weak", ["", "a", "password1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])
def test_weak_passphrases_are_refused_with_what_to_do(weak):
    with pytest.raises(IdentityError, match="seven random words|--generate-passphrase"):
        passphrase.check_new_passphrase(weak, where="in p.txt")


def test_a_long_passphrase_is_estimated_on_its_beginning_only():
    long = random_eff_words(60)
    assert passphrase.estimate_bits(long) >= 77
    assert passphrase.estimate_bits("a" * 4096) < 77
