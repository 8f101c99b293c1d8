"""One way to show money, dates, times and how long ago, in the viewer's language.

Pages write every moment as ``<time datetime="…" data-format="…">``: the server fills in the
text in the viewer's language and the deployment's time zone (``CAPE_TIME_ZONE``), and the
browser then rewrites it in the viewer's own time zone, in the same language and style
(``cape.js``), so a French agent in Copenhagen sees « 1 nov. 2026, 14:10 » in her local time.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, format_timedelta, get_datetime_format
from babel.numbers import format_decimal, get_decimal_symbol
from markupsafe import Markup

from cape.kit.clock import utcnow
from cape.kit.money import format_amount, minor_digits

FORMATS = ("date", "datetime", "time", "relative")


@lru_cache(maxsize=64)
def formatter(language: str, time_zone: str = "UTC") -> Formatter:
    """The formatter for a language and zone, made once: parsing a locale costs more than using it."""
    return Formatter(language, time_zone)


class Formatter:
    """Formatting for one viewer: ``language`` (en, fr, da) and the time zone to show times in."""

    def __init__(self, language: str, time_zone: str | tzinfo = "UTC"):
        self.language = language
        # Babel's functions take a Locale or its name; a name is parsed again on every call.
        self.locale = Locale.parse(language)
        self.zone = ZoneInfo(time_zone) if isinstance(time_zone, str) else time_zone

    def money(self, amount: int | None, currency: str | None) -> str:
        """Minor units as the viewer writes money: "$120.50", "DKK 499.00", « 89,00 € », "1.499,00 kr."."""
        if amount is None or not currency:
            return ""
        return format_amount(amount, currency, locale=self.locale)

    def amount_input(self, amount: int | None, currency: str) -> str:
        """Minor units as a form field shows them for editing, without grouping so they read back as
        typed: "120.50", « 120,50 », "1500" (JPY); "" for none."""
        if amount is None:
            return ""
        return str(Decimal(amount).scaleb(-minor_digits(currency))).replace(".", get_decimal_symbol(self.locale))

    def text(self, moment: datetime | None, style: str = "datetime") -> str:
        """The moment as text, in the deployment's time zone (the browser shows its own)."""
        if moment is None:
            return ""
        local = moment.astimezone(self.zone)
        if style == "date":
            return format_date(local, format="medium", locale=self.locale)
        if style == "time":
            return format_time(local, format="short", locale=self.locale)
        if style == "relative":
            return format_timedelta(moment - utcnow(), add_direction=True, threshold=1.1, locale=self.locale)
        # The language's own way to join a medium date and a short time ("{1}, {0}", "{1} {0}").
        pattern = get_datetime_format("medium", locale=self.locale)
        date_text = format_date(local, format="medium", locale=self.locale)
        time_text = format_time(local, format="short", locale=self.locale)
        return pattern.replace("{1}", date_text).replace("{0}", time_text)

    def when(self, moment: datetime | None, style: str = "datetime") -> Markup:
        """``<time>`` for a moment: machine-readable, shown in the viewer's language and time zone."""
        if moment is None:
            return Markup("")
        if style not in FORMATS:
            raise ValueError(f"unknown date style {style!r}")
        iso = moment.isoformat()
        full = self.text(moment, "datetime")
        return Markup('<time datetime="{}" data-format="{}" title="{}">{}</time>').format(
            iso, style, full, self.text(moment, style)
        )

    def duration(self, seconds: float) -> str:
        """How long, without direction: "3 hours", « 2 jours »."""
        return format_timedelta(seconds, threshold=1.1, format="short", locale=self.locale)

    def since(self, moment: datetime | None) -> str:
        """How long ago, short and without direction ("3 hr", « 2 j »): waiting times in lists."""
        return "" if moment is None else self.duration((utcnow() - moment).total_seconds())

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.locale)
