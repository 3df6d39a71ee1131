"""Caller language per turn and the switches over a call."""

from __future__ import annotations

import pytest

from analytics.language import LanguageOptions, LanguageSwitch, analyse_languages, detect_language
from runtime.events import CallerUtterance


def said(turn: int, text: str) -> CallerUtterance:
    return CallerUtterance(at=turn * 10.0, turn=turn, text=text, speech_ms=1500.0)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("I am looking to buy a three bedroom house in Austin.", "en"),
        ("About five hundred thousand dollars.", "en"),
        ("Quiero comprar una casa de tres habitaciones en Austin.", "es"),
        ("Sí, en tres meses más o menos.", "es"),
        ("Tôi muốn mua nhà ở Austin", "vi"),
        # too short to judge: a guess would be noise
        ("Yes please", "unknown"),
        ("okay okay okay", "unknown"),
        ("sí, claro", "unknown"),
        ("12345 678 90", "unknown"),
    ],
)
def test_detects_the_language_of_a_turn(text: str, language: str) -> None:
    assert detect_language(text)[0] == language


def test_detection_is_deterministic() -> None:
    text = "Je cherche une maison à Austin"
    assert {detect_language(text) for _ in range(5)} == {detect_language(text)}


def test_languages_outside_the_allow_list_are_unknown() -> None:
    assert detect_language("Quiero comprar una casa en Austin", LanguageOptions(allowed=("en",)))[0] == "unknown"


def test_an_english_call_has_no_switch() -> None:
    report = analyse_languages(
        [said(1, "I want to buy a condo downtown."), said(2, "Yes"), said(3, "Around four hundred thousand dollars.")]
    )
    assert [t.language for t in report.turns] == ["en", "unknown", "en"]
    assert report.switches == ()
    assert report.primary == "en"


def test_a_spanish_call() -> None:
    report = analyse_languages(
        [said(1, "Hola, busco una casa de tres habitaciones."), said(2, "Tenemos unos cuatrocientos mil dólares.")]
    )
    assert report.primary == "es"
    assert report.switches == ()


def test_switches_are_flagged_across_unknown_turns() -> None:
    report = analyse_languages(
        [
            said(1, "I am looking to buy a house in Austin."),
            said(2, "Sí"),  # not judged: the switch is counted where the language is known
            said(3, "Perdón, prefiero hablar en español, por favor."),
            said(4, "Queremos mudarnos en tres meses."),
            said(5, "Okay, thank you very much for your help."),
        ]
    )
    assert report.switches == (
        LanguageSwitch(turn=3, at=30.0, from_language="en", to_language="es"),
        LanguageSwitch(turn=5, at=50.0, from_language="es", to_language="en"),
    )
    assert report.primary == "en"  # two turns each: the one heard first


def test_an_empty_call_is_unknown() -> None:
    report = analyse_languages([])
    assert (report.turns, report.switches, report.primary) == ((), (), "unknown")


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="min_words"):
        LanguageOptions(min_words=0)
