"""E.164, the only phone number form Twilio dials (``+15125550100``)."""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_e164(number: str) -> bool:
    """``number`` is written in E.164: a plus, a country code, at most 15 digits in all."""
    return _E164.fullmatch(number) is not None
