"""PII redaction on real-looking caller speech (as STT writes it), the near-misses that must stay,
and transcript encryption at rest."""

from __future__ import annotations

import pytest

from analytics.pii import (
    BadKey,
    Cipher,
    CipherError,
    WrongKey,
    luhn_valid,
    normalise_spoken_digits,
    redact,
    routing_valid,
)

REDACTED = [
    # social security numbers, written and spoken digit by digit
    ("My social is 123-45-6789.", "My social is [SSN].", ("SSN",)),
    ("it's 219 09 9999", "it's [SSN]", ("SSN",)),
    (
        "my social security number is one two three four five six seven eight nine",
        "my social security number is [SSN]",
        ("SSN",),
    ),
    ("sure, one two three, four five, six seven eight nine", "sure, [SSN]", ("SSN",)),
    # cards (Luhn-valid test numbers of Visa, Mastercard, Amex), with spaces, dashes or none
    ("card number 4111 1111 1111 1111 expires in May", "card number [CARD] expires in May", ("CARD",)),
    ("it's 5500-0000-0000-0004", "it's [CARD]", ("CARD",)),
    ("amex 378282246310005 ok", "amex [CARD] ok", ("CARD",)),
    ("four one one one one one one one one one one one one one one one", "[CARD]", ("CARD",)),
    # bank details
    (
        "my routing number is 021000021 and my account number is 12345678",
        "my routing number is [ROUTING] and my account number is [BANK_ACCOUNT]",
        ("BANK_ACCOUNT", "ROUTING"),
    ),
    ("the checking account ending in 4321", "the checking account ending in [BANK_ACCOUNT]", ("BANK_ACCOUNT",)),
    ("ABA 011000015 please", "ABA [ROUTING] please", ("ROUTING",)),
    # emails, written and spoken
    ("email me at john.smith@example.com please", "email me at [EMAIL] please", ("EMAIL",)),
    ("it's john at gmail dot com", "it's [EMAIL]", ("EMAIL",)),
    ("my email is jane dot doe at lakesiderealty dot org", "my email is [EMAIL]", ("EMAIL",)),
    ("you can reach me at bob_smith at yahoo.com", "you can reach me at [EMAIL]", ("EMAIL",)),
    # phone numbers, written and spoken
    ("call me back at 512-867-5309", "call me back at [PHONE]", ("PHONE",)),
    ("my cell is (737) 555-0142, thanks", "my cell is [PHONE], thanks", ("PHONE",)),
    ("my number is five one two, eight six seven, five three oh nine", "my number is [PHONE]", ("PHONE",)),
    ("+1 415 867 5309", "[PHONE]", ("PHONE",)),
    # dates of birth, only when introduced as one
    ("I was born on March 3rd, 1985", "I was born on [DOB]", ("DOB",)),
    ("date of birth is 03/14/1979", "date of birth is [DOB]", ("DOB",)),
    ("my birthday is the fourth of July nineteen eighty five", "my birthday is [DOB]", ("DOB",)),
    ("DOB: 7/4/85", "DOB: [DOB]", ("DOB",)),
    ("born in Texas on December 25, 1990", "born in Texas on [DOB]", ("DOB",)),
    # several kinds in one turn
    (
        "I'm Ann, 512-867-5309, ann@example.org, born 1/2/1980",
        "I'm Ann, [PHONE], [EMAIL], born [DOB]",
        ("DOB", "EMAIL", "PHONE"),
    ),
]

NEAR_MISSES = [
    "We're thinking about $450,000, maybe 500,000 tops.",
    "a three bedroom house with two baths",
    "we live at 1234 Oak Street, Austin, 78701",
    "I was born in Texas",
    "I was born in 1985 and we moved in 2019",
    "the card is 4111-1111-1111-1112",
    "4111111111111112",
    "I saw the listing at zillow dot com",
    "we have an account with you and the budget is 450000",
    "one or two bathrooms, maybe three",
    "MLS number 98765",
    "it was built in 1998 on a 7500 square foot lot",
    "is 666-12-3456 a real one",
    "call me about the house on May 3rd",
]


@pytest.mark.parametrize(("said", "stored", "kinds"), REDACTED)
def test_pii_is_replaced_by_its_kind(said: str, stored: str, kinds: tuple[str, ...]) -> None:
    redaction = redact(said)
    assert redaction.text == stored
    assert redaction.kinds == kinds


@pytest.mark.parametrize("said", NEAR_MISSES)
def test_near_misses_are_left_alone(said: str) -> None:
    redaction = redact(said)
    assert redaction.text == said
    assert redaction.kinds == ()


def test_redaction_is_idempotent() -> None:
    once = redact("my social is 123-45-6789 and my email is a@b.co")
    assert redact(once.text).text == once.text


def test_spoken_digits_become_digits_only_in_long_runs() -> None:
    assert normalise_spoken_digits("three bedroom, one two three four Main") == "three bedroom, 1234 Main"
    assert normalise_spoken_digits("Oh, one two three four") == "Oh, 1234"
    assert normalise_spoken_digits("two or three, four") == "two or three, four"


def test_checksums() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert routing_valid("021000021")
    assert not routing_valid("021000022")
    assert not routing_valid("991000021")  # no such prefix


def test_cipher_round_trip() -> None:
    cipher = Cipher(Cipher.generate_key())
    token = cipher.encrypt("my social is 123-45-6789")
    assert b"6789" not in token
    assert cipher.decrypt(token) == "my social is 123-45-6789"


def test_cipher_with_the_wrong_key_fails_clearly() -> None:
    token = Cipher(Cipher.generate_key()).encrypt("raw transcript")
    with pytest.raises(WrongKey, match="another key"):
        Cipher(Cipher.generate_key()).decrypt(token)


def test_cipher_rejects_a_tampered_token() -> None:
    cipher = Cipher(Cipher.generate_key())
    token = bytearray(cipher.encrypt("raw transcript"))
    token[-5] ^= 1
    with pytest.raises(CipherError):
        cipher.decrypt(bytes(token))


@pytest.mark.parametrize("key", ["", "not-a-key", "x" * 44, b"\x00" * 32])
def test_cipher_rejects_a_bad_key(key: str | bytes) -> None:
    with pytest.raises(BadKey, match="32 url-safe base64"):
        Cipher(key)
