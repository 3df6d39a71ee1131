from __future__ import annotations

import pytest

from telephony.stream_token import StreamTokenError, issue_stream_token, verify_stream_token

SECRET = b"s" * 32
CALL = "CA" + "0" * 32
OTHER_CALL = "CA" + "1" * 32
NOW = 1_700_000_000.5


def _reason(token: str, *, call_sid: str = CALL, secret: bytes = SECRET, now: float = NOW) -> str:
    with pytest.raises(StreamTokenError) as info:
        verify_stream_token(secret, call_sid, token, now=now)
    return info.value.reason


def test_valid_token_accepted() -> None:
    token = issue_stream_token(SECRET, CALL, now=NOW, ttl_s=60)
    verify_stream_token(SECRET, CALL, token, now=NOW)
    verify_stream_token(SECRET, CALL, token, now=NOW + 59)


def test_format() -> None:
    version, expiry, mac = issue_stream_token(SECRET, CALL, now=NOW, ttl_s=60).split(".")
    assert version == "v1"
    assert expiry == str(int(NOW + 60))
    assert len(mac) == 43
    assert "=" not in mac


def test_token_for_another_call_is_bad_signature() -> None:
    # The call SID is not in the token, so another call's token cannot be told from a forgery.
    token = issue_stream_token(SECRET, OTHER_CALL, now=NOW, ttl_s=60)
    assert _reason(token) == "bad_signature"


def test_expired() -> None:
    token = issue_stream_token(SECRET, CALL, now=NOW, ttl_s=60)
    assert _reason(token, now=NOW + 60) == "expired"
    assert _reason(token, now=NOW + 3600) == "expired"


def test_tampered_expiry_is_bad_signature() -> None:
    version, expiry, mac = issue_stream_token(SECRET, CALL, now=NOW, ttl_s=60).split(".")
    later = str(int(expiry) + 3600)
    assert _reason(f"{version}.{later}.{mac}", now=NOW + 120) == "bad_signature"


def test_tampered_mac_is_bad_signature() -> None:
    token = issue_stream_token(SECRET, CALL, now=NOW, ttl_s=60)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert _reason(flipped) == "bad_signature"


def test_different_secret_is_bad_signature() -> None:
    token = issue_stream_token(b"another secret", CALL, now=NOW, ttl_s=60)
    assert _reason(token) == "bad_signature"


def test_bad_signature_reported_before_expiry() -> None:
    token = issue_stream_token(b"another secret", CALL, now=NOW, ttl_s=60)
    assert _reason(token, now=NOW + 3600) == "bad_signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "v1..",
        "v1.123",
        "v2.1700000060." + "A" * 43,
        "v1.-1700000060." + "A" * 43,
        "v1.1700000060." + "A" * 42,
        "v1.1700000060." + "A" * 44,
        "v1.1700000060." + "A" * 42 + "=",
        "v1.1700000060." + "A" * 42 + "+",
        "v1.1700000060." + "A" * 42 + "é",
        "v1.١٧٠٠٠٠٠٠٦٠." + "A" * 43,
        "v1.1700000060." + "A" * 43 + "\n",
        "v1.1700000060." + "A" * 43 + ".extra",
        "v1." + "9" * 13 + "." + "A" * 43,
    ],
)
def test_malformed(token: str) -> None:
    assert _reason(token) == "malformed"


def test_reason_is_exception_message() -> None:
    assert str(StreamTokenError("expired")) == "expired"


@pytest.mark.parametrize(
    ("secret", "call_sid", "ttl_s"),
    [(b"", CALL, 60.0), (SECRET, "", 60.0), (SECRET, CALL, 0.0), (SECRET, CALL, -1.0)],
)
def test_issue_refuses_bad_arguments(secret: bytes, call_sid: str, ttl_s: float) -> None:
    with pytest.raises(ValueError):
        issue_stream_token(secret, call_sid, now=NOW, ttl_s=ttl_s)
