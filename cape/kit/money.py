"""Money: integer minor units plus an ISO 4217 currency; decimals only at the edges (forms, display)."""

from __future__ import annotations

import unicodedata
from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, get_currency_symbol, is_currency

from cape.kit.errors import InvalidInput


def minor_digits(currency: str) -> int:
    """Digits after the decimal point: 2 for USD and EUR, 0 for JPY, 3 for KWD."""
    return get_currency_precision(currency)


def parse_currency(code: str) -> str:
    """An ISO 4217 code as typed ("usd ", "DKK") in its canonical form; anything else is an error."""
    code = (code or "").strip().upper()
    if len(code) != 3 or not is_currency(code):
        raise InvalidInput("currency", "an ISO 4217 code such as USD, EUR or DKK")
    return code


def parse_amount(text: str, currency: str, *, field: str = "amount", maximum: int | None = None) -> int:
    """A person's "120", "120.50" or "120,50" as minor units; more decimals than the currency has is an error.

    ``maximum`` (minor units) is checked before converting, so "1e999999" is refused at once
    instead of becoming a million-digit integer.
    """
    cleaned = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise InvalidInput(field, "a number such as 120.50") from exc
    if not value.is_finite() or value < 0:
        raise InvalidInput(field, "a number of zero or more")
    try:
        minor = value.scaleb(minor_digits(currency))
    except ArithmeticError as exc:  # decimal.Overflow for exponents beyond the context
        raise InvalidInput(field, "too large") from exc
    if maximum is not None and minor > maximum:
        raise InvalidInput(field, f"at most {format_amount(maximum, currency)}")
    if minor != minor.to_integral_value():
        raise InvalidInput(field, f"{currency} has {minor_digits(currency)} decimals")
    return int(minor)


def format_amount(amount: int, currency: str, *, locale: str = "en") -> str:
    """Minor units for display in the viewer's language: 12050 USD -> "$120.50", 49900 DKK -> "DKK 499.00"."""
    value = Decimal(amount).scaleb(-minor_digits(currency))
    text = format_currency(value, currency, locale=locale)
    return _space_letters_from_digits(text, get_currency_symbol(currency, locale=locale))


def _space_letters_from_digits(text: str, symbol: str) -> str:
    """CLDR's currency spacing, which Babel leaves out: a no-break space between a symbol that ends
    (or starts) with a letter and the digits beside it, so English reads "DKK 499.00", not "DKK499.00";
    "$120.50" and "€89.00" stay as they are, and so does a pattern that already has its space."""
    at = text.find(symbol)
    if not symbol or at < 0:
        return text
    end = at + len(symbol)
    if end < len(text) and text[end].isdigit() and _is_letter_like(symbol[-1]):
        text = f"{text[:end]}\u00a0{text[end:]}"
    if at > 0 and text[at - 1].isdigit() and _is_letter_like(symbol[0]):
        text = f"{text[:at]}\u00a0{text[at:]}"
    return text


def _is_letter_like(char: str) -> bool:
    """CLDR's [[:^S:]&[:^Z:]]: neither a symbol ($, €, ¥) nor a space."""
    return unicodedata.category(char)[0] not in "SZ"
