from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from aiohttp.web import FileField
from multidict import MultiDict, MultiDictProxy

from telephony.signature import WebhookValidator, compute_signature, public_url_for

# The SDK's published test vector (protocols.md §1.6).
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def _hmac_sha1_b64(token: str, signed: str) -> str:
    """Independent of the SDK, to pin what string Twilio signs."""
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def test_compute_signature_matches_sdk_test_vector() -> None:
    assert compute_signature(TOKEN, URL, PARAMS) == SIGNATURE
    signed = URL + "CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
    assert _hmac_sha1_b64(TOKEN, signed) == SIGNATURE


def test_validator_accepts_sdk_test_vector() -> None:
    assert WebhookValidator(TOKEN).validate(URL, PARAMS, SIGNATURE)


def _aiohttp_form(pairs: list[tuple[str, str]]) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The type ``await request.post()`` returns."""
    form: MultiDict[str | bytes | bytearray | FileField] = MultiDict(pairs)
    return MultiDictProxy(form)


def test_validator_accepts_form_as_aiohttp_gives_it() -> None:
    form = _aiohttp_form(list(PARAMS.items()))
    assert WebhookValidator(TOKEN).validate(URL, form, SIGNATURE)


def test_validator_accepts_repeated_keys_as_aiohttp_gives_them() -> None:
    pairs = [("StatusCallbackEvent", "ringing"), ("To", "+1"), ("StatusCallbackEvent", "answered")]
    signature = compute_signature(TOKEN, URL, MultiDict(pairs))
    assert WebhookValidator(TOKEN).validate(URL, _aiohttp_form(pairs), signature)


def test_tampered_value_rejected() -> None:
    assert not WebhookValidator(TOKEN).validate(URL, {**PARAMS, "Digits": "1235"}, SIGNATURE)


def test_extra_param_rejected() -> None:
    assert not WebhookValidator(TOKEN).validate(URL, {**PARAMS, "Extra": "x"}, SIGNATURE)


def test_missing_param_rejected() -> None:
    params = {k: v for k, v in PARAMS.items() if k != "To"}
    assert not WebhookValidator(TOKEN).validate(URL, params, SIGNATURE)


def test_tampered_url_rejected() -> None:
    assert not WebhookValidator(TOKEN).validate(URL.replace("foo=1", "foo=2"), PARAMS, SIGNATURE)


def test_wrong_token_rejected() -> None:
    assert not WebhookValidator("54321").validate(URL, PARAMS, SIGNATURE)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_rejected(signature: str | None) -> None:
    assert not WebhookValidator(TOKEN).validate(URL, PARAMS, signature)


def test_garbage_signature_rejected() -> None:
    assert not WebhookValidator(TOKEN).validate(URL, PARAMS, "not a signature ✓")


def test_non_text_value_rejected() -> None:
    form: dict[str, object] = {**PARAMS, "Upload": b"bytes"}
    assert not WebhookValidator(TOKEN).validate(URL, form, SIGNATURE)


def test_empty_auth_token_refused() -> None:
    with pytest.raises(ValueError):
        WebhookValidator("")


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        ("https://host.example/twilio/voice", "https://host.example:443/twilio/voice"),
        ("https://host.example:443/twilio/voice", "https://host.example/twilio/voice"),
        ("http://host.example/twilio/voice", "http://host.example:80/twilio/voice"),
    ],
)
def test_default_port_variants_accepted(signed_url: str, received_url: str) -> None:
    signature = compute_signature(TOKEN, signed_url, PARAMS)
    assert WebhookValidator(TOKEN).validate(received_url, PARAMS, signature)


def test_other_host_rejected() -> None:
    signature = compute_signature(TOKEN, "https://host.example/twilio/voice", PARAMS)
    assert not WebhookValidator(TOKEN).validate("https://evil.example/twilio/voice", PARAMS, signature)


def test_repeated_keys_signed_sorted_and_deduplicated() -> None:
    form = MultiDict([("To", "+1"), ("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered")])
    reordered = MultiDict([("StatusCallbackEvent", "answered"), ("To", "+1"), ("StatusCallbackEvent", "ringing")])
    duplicated = MultiDict([*reordered.items(), ("StatusCallbackEvent", "answered")])
    signature = compute_signature(TOKEN, URL, form)
    # Sorted names, then each name's values sorted: answered before ringing.
    signed = URL + "StatusCallbackEventansweredStatusCallbackEventringingTo+1"
    assert signature == _hmac_sha1_b64(TOKEN, signed)
    validator = WebhookValidator(TOKEN)
    assert validator.validate(URL, reordered, signature)
    assert validator.validate(URL, duplicated, signature)


def test_repeated_key_with_missing_value_rejected() -> None:
    form = MultiDict([("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered")])
    signature = compute_signature(TOKEN, URL, form)
    assert not WebhookValidator(TOKEN).validate(URL, {"StatusCallbackEvent": "ringing"}, signature)


def test_empty_value_is_signed() -> None:
    signature = compute_signature(TOKEN, URL, {"Body": ""})
    assert WebhookValidator(TOKEN).validate(URL, {"Body": ""}, signature)
    assert not WebhookValidator(TOKEN).validate(URL, {}, signature)


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://app.example.com", "/twilio/voice", "https://app.example.com/twilio/voice"),
        ("https://app.example.com/", "/twilio/voice", "https://app.example.com/twilio/voice"),
        ("https://app.example.com/", "twilio/voice", "https://app.example.com/twilio/voice"),
        (
            "https://app.example.com/ll/",
            "/twilio/voice?a=1&b=%20",
            "https://app.example.com/ll/twilio/voice?a=1&b=%20",
        ),
        ("http://localhost:8080", "/twilio/status", "http://localhost:8080/twilio/status"),
    ],
)
def test_public_url_for(base: str, path: str, expected: str) -> None:
    assert public_url_for(base, path) == expected


@pytest.mark.parametrize("base", ["ftp://app.example.com", "app.example.com", "https://", "https://a.example/?x=1"])
def test_public_url_for_rejects_bad_base(base: str) -> None:
    with pytest.raises(ValueError):
        public_url_for(base, "/twilio/voice")


def test_public_url_for_signs_what_twilio_requested() -> None:
    requested = "https://app.example.com/twilio/voice?tenant=t_1"
    signature = compute_signature(TOKEN, requested, PARAMS)
    url = public_url_for("https://app.example.com/", "/twilio/voice?tenant=t_1")
    assert WebhookValidator(TOKEN).validate(url, PARAMS, signature)
