"""``X-Twilio-Signature`` checks for Twilio webhooks, sans-IO (protocols.md §1.6).

The HMAC itself is the official SDK's ``RequestValidator``: Twilio defines the algorithm by that
code (sorted names, each name's values sorted and de-duplicated, URL tried with and without the
default port), so re-implementing it would only add a way to disagree with Twilio.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from multidict import MultiDict
from twilio.request_validator import RequestValidator


def _multidict(params: Mapping[str, object]) -> MultiDict[str] | None:
    """Every (name, value) pair of ``params``, repeats kept; None if a value is not text.

    The SDK reads repeated names only through ``getall``/``getlist``; a plain dict of lists
    crashes it (it puts the list in a set). A ``MultiDict`` gives it ``getall`` whatever the
    caller passed. Twilio never uploads files, so a non-text value cannot be a Twilio request.
    """
    pairs = list(params.items())
    texts = [(name, value) for name, value in pairs if isinstance(value, str)]
    return MultiDict(texts) if len(texts) == len(pairs) else None


def compute_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for a form POST of ``params`` to ``url``.

    Used by the simulated Twilio to sign what it sends. Pass a ``MultiDict`` to repeat a name.
    """
    return str(RequestValidator(auth_token).compute_signature(url, _multidict(params)))


class WebhookValidator:
    """Checks that a webhook request was signed with our account's auth token."""

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("auth_token is empty: anyone could sign requests")
        self._validator = RequestValidator(auth_token)

    def validate(self, url: str, params: Mapping[str, object], signature: str | None) -> bool:
        """True if ``signature`` signs ``url`` and every form parameter received.

        ``url`` is the full URL Twilio requested (see ``public_url_for``); ``params`` is the
        form as received, e.g. aiohttp's ``await request.post()``, repeated names included.
        """
        form = _multidict(params)
        if not signature or form is None:
            return False
        return bool(self._validator.validate(url, form, signature))


def public_url_for(base_url: str, path: str) -> str:
    """The URL Twilio requested: our public base URL joined with the request target.

    ``path`` is the request target as received, query string included (aiohttp:
    ``request.raw_path``), since Twilio signs the URL exactly as it requested it. A path
    prefix on ``base_url`` (a reverse proxy mounting us under ``/leadline``) is kept.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"public base URL must be http(s)://host[/prefix], got {base_url!r}")
    return base_url.rstrip("/") + "/" + path.lstrip("/")
