"""A lead's country from its phone number (phonenumbers), only for international numbers (+CC …): a national number
says nothing about the country without one."""

from __future__ import annotations

import phonenumbers


def phone_country(raw: str) -> str | None:
    """ISO alpha-2 of the country an international phone number belongs to; None when it does not say."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    region = phonenumbers.region_code_for_number(number)
    return region if region and region != phonenumbers.UNKNOWN_REGION else None
