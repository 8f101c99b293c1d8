"""Money, dates and times read the same way everywhere, in the viewer's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cape.kit.money import parse_amount
from cape.web.formatting import Formatter

TEMPLATES = Path(__file__).resolve().parents[2] / "cape" / "web" / "templates"
MOMENT = datetime(2026, 11, 1, 13, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "datetime_text", "date_text", "money_text"),
    [
        ("en", "Nov 1, 2026, 2:10\u202fPM", "Nov 1, 2026", "€89.00"),
        ("fr", "1 nov. 2026, 14:10", "1 nov. 2026", "89,00\u00a0€"),
        ("da", "1. nov. 2026 14.10", "1. nov. 2026", "89,00\u00a0€"),
    ],
)
def test_each_language_writes_moments_and_money_its_own_way(language, datetime_text, date_text, money_text):
    fmt = Formatter(language, "Europe/Copenhagen")
    assert fmt.text(MOMENT).replace(" ", " ") == datetime_text.replace(" ", " ")
    assert fmt.text(MOMENT, "date") == date_text
    assert fmt.money(8900, "EUR") == money_text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        # A code instead of a symbol is kept apart from the digits by a no-break space (CLDR's
        # currency spacing, which Babel leaves out); a symbol stays against them.
        ("en", ["DKK\u00a0499.00", "-DKK\u00a0499.00", "CHF\u00a012.50", "€89.00", "$89.00", "¥1,500"]),
        (
            "fr",
            [
                "499,00\u00a0DKK",
                "-499,00\u00a0DKK",
                "12,50\u00a0CHF",
                "89,00\u00a0€",
                "89,00\u00a0$US",
                "1\u202f500\u00a0JPY",
            ],
        ),
        (
            "da",
            [
                "499,00\u00a0kr.",
                "-499,00\u00a0kr.",
                "12,50\u00a0CHF",
                "89,00\u00a0€",
                "89,00\u00a0USD",
                "1.500\u00a0JP¥",
            ],
        ),
    ],
)
def test_a_currency_code_never_touches_the_digits(language, expected):
    amounts = [(499_00, "DKK"), (-499_00, "DKK"), (12_50, "CHF"), (89_00, "EUR"), (89_00, "USD"), (1500, "JPY")]
    assert [Formatter(language).money(amount, currency) for amount, currency in amounts] == expected


@pytest.mark.parametrize(("language", "expected"), [("en", "1500.50"), ("fr", "1500,50"), ("da", "1500,50")])
def test_an_amount_to_edit_has_the_languages_decimal_mark_and_reads_back_as_typed(language, expected):
    fmt = Formatter(language)
    assert fmt.amount_input(1500_50, "EUR") == expected and fmt.amount_input(1500, "JPY") == "1500"
    assert parse_amount(expected, "EUR") == 1500_50 and fmt.amount_input(None, "EUR") == ""


def test_a_moment_is_a_time_element_the_browser_can_show_in_its_own_zone():
    tag = str(Formatter("fr", "UTC").when(MOMENT, "date"))
    assert tag == (
        '<time datetime="2026-11-01T13:10:00+00:00" data-format="date" title="1 nov. 2026, 13:10">1 nov. 2026</time>'
    )
    assert str(Formatter("en").when(None)) == ""


def test_no_template_formats_dates_or_money_by_hand():
    by_hand = re.compile(r"strftime|isoformat\(|\"%\.2f\"|/ 100\b")
    offenders = [
        f"{path.name}:{n}" for path in TEMPLATES.glob("*.html")
        for n, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)
    ]  # fmt: skip
    assert not offenders, f"use money() and when() instead: {offenders}"
