"""The Actions card's errors in the agent's language, beside the field they are about.

Services give English reasons for API callers (``InvalidInput(field, reason)``, ``Conflict``,
``Forbidden``); the table below turns every one that taking or reversing an action can raise into
a sentence in the viewer's language. A reason missing from it still shows, as "Check this field"
with the English detail, never as nothing (tests/actions/test_card.py meets each reason once).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cape.actions.policy import MAX_AMOUNT
from cape.i18n import translations
from cape.i18n.terms import N_
from cape.kit.errors import CapeError, Conflict, Forbidden, InvalidInput
from cape.web.formatting import Formatter

# The card's fields, in the order they appear; an error about any other field is about the card.
FIELDS = ("type", "order_id", "amount", "currency", "reason", "note")


@dataclass(frozen=True)
class CardError:
    """One error for the Actions card: ``field`` is a form field, or None for the card as a whole."""

    field: str | None
    message: str


@dataclass(frozen=True)
class _Words:
    """What a rule needs to write its sentence: the catalog, money in the viewer's language, the currency."""

    gettext: Callable[[str], str]
    ngettext: Callable[[str, str, int], str]
    fmt: Formatter
    currency: str

    def money(self, amount: int) -> str:
        try:
            return self.fmt.money(amount, self.currency)
        except (ValueError, LookupError):  # a currency no one chose (a crafted form): plain digits
            return str(amount)


def _decimals(m: re.Match, w: _Words) -> str:
    digits = int(m["digits"])
    if digits == 0:
        return w.gettext("Amounts in %(currency)s have no decimals.") % {"currency": m["currency"]}
    return w.ngettext(
        "Amounts in %(currency)s have at most %(num)d decimal.",
        "Amounts in %(currency)s have at most %(num)d decimals.",
        digits,
    ) % {"currency": m["currency"], "num": digits}


def _too_large(m: re.Match, w: _Words) -> str:
    return w.gettext("The amount is too large: at most %(amount)s.") % {"amount": w.money(MAX_AMOUNT)}


def _left_to_refund(m: re.Match, w: _Words) -> str:
    text = w.gettext(
        "Only %(amount)s of order %(order)s is left to refund (refunds done or waiting for approval count)."
    )
    return text % {"amount": w.money(int(m["left"])), "order": m["order"]}


def _fixed(text: str) -> Callable[[re.Match, _Words], str]:
    return lambda m, w: w.gettext(text)


# (error class, field or None for any, English reason it says, the sentence shown). First match wins.
RULES: list[tuple[type[CapeError], str | None, re.Pattern, Callable[[re.Match, _Words], str]]] = [
    (InvalidInput, "type", re.compile(r".*"), _fixed(N_("Choose an action."))),
    (InvalidInput, "order_id", re.compile(r".*"), _fixed(N_("Choose one of this customer's orders."))),
    (InvalidInput, "amount", re.compile(r"a number such as"), _fixed(N_("Enter an amount such as 120.50."))),
    (InvalidInput, "amount", re.compile(r"a number of zero or more|must not be negative"),
     _fixed(N_("The amount cannot be negative."))),
    (InvalidInput, "amount", re.compile(r"must be more than zero"), _fixed(N_("Enter an amount above zero."))),
    (InvalidInput, "amount", re.compile(r"too large|^at most |must be at most \d+ minor units"), _too_large),
    (InvalidInput, "amount", re.compile(r"(?P<currency>[A-Z]{3}) has (?P<digits>\d+) decimals"), _decimals),
    (InvalidInput, "amount", re.compile(r"only (?P<left>-?\d+) of order (?P<order>.+?) is left to refund"),
     _left_to_refund),
    (InvalidInput, "currency", re.compile(r"ISO 4217"), _fixed(N_("Choose a currency."))),
    (InvalidInput, "currency", re.compile(r"order (?P<order>.+) is in (?P<currency>[A-Z]{3})$"),
     lambda m, w: w.gettext("Order %(order)s is in %(currency)s: choose that currency, or no order.")
     % {"order": m["order"], "currency": m["currency"]}),
    (InvalidInput, "reason", re.compile(r"say why it is reversed"), _fixed(N_("Say why you reverse it."))),
    (InvalidInput, "reason", re.compile(r"say why"), _fixed(N_("Choose a reason."))),
    (Forbidden, None, re.compile(r"only the agent who took it"),
     _fixed(N_("Only the agent who took it, or a supervisor, can reverse it."))),
    (Conflict, None, re.compile(r"only executed actions can be reversed"),
     _fixed(N_("Only a done action can be reversed."))),
    (Conflict, None, re.compile(r"counter-action cannot itself be reversed"),
     _fixed(N_("A reversal cannot itself be reversed."))),
    (Conflict, None, re.compile(r"store has not confirmed"),
     _fixed(N_("The store has not confirmed this action yet: reverse it once it has."))),
    (Conflict, None, re.compile(r"was already reversed"), _fixed(N_("This action was already reversed."))),
]  # fmt: skip


def explain(error: CapeError, *, language: str, currency: str) -> CardError:
    """The error as the Actions card shows it, in ``language``; ``currency`` is the one the form chose."""
    catalog = translations(language)
    words = _Words(catalog.gettext, catalog.ngettext, Formatter(language), currency)
    field = error.field if isinstance(error, InvalidInput) else None
    said = error.reason if isinstance(error, InvalidInput) else error.message
    for kind, rule_field, pattern, sentence in RULES:
        if isinstance(error, kind) and rule_field in (None, field) and (m := pattern.search(said)):
            return CardError(field if field in FIELDS else None, sentence(m, words))
    if field in FIELDS:
        return CardError(field, catalog.gettext("Check this field (%(detail)s).") % {"detail": said})
    return CardError(None, catalog.gettext("This could not be done: %(detail)s") % {"detail": error.message})
