"""Interface translations (English, French, Danish) from Babel catalogs, read once at start."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from cape.config import SUPPORTED_LANGUAGES

CATALOG_DIR = Path(__file__).parent


@cache
def translations(language: str) -> NullTranslations:
    """The catalog for a language; English (the source language) when there is none."""
    po_path = CATALOG_DIR / language / "LC_MESSAGES" / "messages.po"
    if language not in SUPPORTED_LANGUAGES or not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def negotiate(accept_language: str | None, default: str = "en") -> str:
    """The best served language for an Accept-Language header."""
    if not accept_language:
        return default
    wanted = []
    for part in accept_language.split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            weight = 0.0
        if tag:
            wanted.append((weight, tag.strip().replace("-", "_")))
    preferred = [tag for _, tag in sorted(wanted, key=lambda pair: -pair[0])]
    locale = Locale.negotiate(preferred, list(SUPPORTED_LANGUAGES), sep="_")
    return locale.language if locale else default


def language_name(language: str) -> str:
    return Locale.parse(language).get_display_name(language).capitalize()
