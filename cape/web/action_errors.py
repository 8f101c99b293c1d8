"""Errors on the action forms in the viewer's language, beside the field they are about.

Services give English reasons for API callers (``InvalidInput(field, reason)``, ``Conflict``,
``Forbidden``); the tables below turn every one that the Actions card (taking or reversing an
action), the authority page and the approvals list can raise into a sentence in the viewer's
language. A reason missing from them still shows, as "Check this field" with the English detail,
never as nothing (tests/actions/test_card.py and tests/web/test_authority_page.py meet each reason).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cape.actions.policy import MAX_AMOUNT
from cape.i18n import translations
from cape.i18n.terms import N_
from cape.kit.errors import CapeError, Conflict, Forbidden, InvalidInput, NotFound
from cape.models import ActionType
from cape.web.formatting import Formatter

# The card's fields, in the order they appear; an error about any other field is about the card.
FIELDS = ("type", "order_id", "amount", "currency", "reason", "note")


@dataclass(frozen=True)
class FormError:
    """One error for a form: ``field`` is one of its fields, or None for the form as a whole."""

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


Rule = tuple[type[CapeError], str | None, re.Pattern, Callable[[re.Match, _Words], str]]

# (error class, field or None for any, English reason it says, the sentence shown). First match wins.
# "amount" stands for every amount field of a form (Form.amount_fields).
RULES: list[Rule] = [
    (InvalidInput, "type", re.compile(r".*"), _fixed(N_("Choose an action."))),
    (InvalidInput, "order_id", re.compile(r".*"), _fixed(N_("Choose one of this customer's orders."))),
    (InvalidInput, "amount", re.compile(r"a number such as"), _fixed(N_("Enter an amount such as 120.50."))),
    (InvalidInput, "amount", re.compile(r"a number of zero or more|must not be negative"),
     _fixed(N_("The amount cannot be negative."))),
    (InvalidInput, "amount", re.compile(r"must be more than zero"), _fixed(N_("Enter an amount above zero."))),
    (InvalidInput, "amount", re.compile(r"too large|^at most |must be at most \d+ minor units|from zero to \d+ minor"),
     _too_large),
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


_person_gone = _fixed(N_("This person could not be found: reload the page."))

# The authority page: a policy per role or person, edited by admins (cape.actions.authority).
AUTHORITY_RULES: list[Rule] = [
    (InvalidInput, "currency", re.compile(r"ISO 4217"), _fixed(N_("Enter a currency code such as USD, EUR or DKK."))),
    (InvalidInput, "user_id", re.compile(r"exactly one"),
     _fixed(N_("This form is for one role or one person: reload the page and try again."))),
    (InvalidInput, "user_id", re.compile(r".*"), _person_gone),
    (NotFound, None, re.compile(r"^user \d+ not found"), _person_gone),
    (InvalidInput, "role", re.compile(r".*"), _fixed(N_("This role could not be found: reload the page."))),
    (Forbidden, None, re.compile(r"only admins set authority"), _fixed(N_("Only an admin can set authority."))),
    (Conflict, None, re.compile(r"just created by someone else"),
     _fixed(N_("Someone else saved this policy at the same moment: reload the page and try again."))),
]  # fmt: skip


def _left_to_approve(m: re.Match, w: _Words) -> str:
    text = w.gettext("Only %(amount)s of order %(order)s is left to refund, less than requested: decline this request.")
    return text % {"amount": w.money(int(m["left"])), "order": m["order"]}


# The approvals list: supervisors deciding on requests (cape.actions.service.approve_action...).
APPROVAL_RULES: list[Rule] = [
    (NotFound, None, re.compile(r"^action \d+ not found"),
     _fixed(N_("This request no longer exists: reload the page."))),
    (Conflict, None, re.compile(r"was already decided"), _fixed(N_("Someone has already decided on this request."))),
    (Forbidden, None, re.compile(r"your own request"), _fixed(N_("Someone else must decide on your own request."))),
    (Forbidden, None, re.compile(r"only supervisors and admins"),
     _fixed(N_("Only a supervisor or an admin can decide on requests."))),
    (Conflict, None, re.compile(r"order (?P<order>.+) has (?P<left>-?\d+) left to refund"), _left_to_approve),
]  # fmt: skip


@dataclass(frozen=True)
class Form:
    """A form whose errors are explained: its fields, which of them hold amounts, the rules to use."""

    fields: tuple[str, ...]
    amount_fields: tuple[str, ...]
    rules: list[Rule]


ACTION_CARD = Form(FIELDS, ("amount",), RULES)
AUTHORITY_FORM = Form(
    ("currency", *(f"per_action.{t.value}" for t in ActionType), "per_customer_30d", "daily_budget"),
    (*(f"per_action.{t.value}" for t in ActionType), "per_action", "per_customer_30d", "daily_budget"),
    AUTHORITY_RULES + RULES,
)
APPROVALS = Form((), (), APPROVAL_RULES)


def explain(error: CapeError, *, language: str, currency: str, form: Form = ACTION_CARD) -> FormError:
    """The error as ``form`` shows it, in ``language``; ``currency`` is the one the form chose."""
    catalog = translations(language)
    words = _Words(catalog.gettext, catalog.ngettext, Formatter(language), currency)
    field = error.field if isinstance(error, InvalidInput) else None
    kind = "amount" if field in form.amount_fields else field
    said = error.reason if isinstance(error, InvalidInput) else error.message
    for error_class, rule_field, pattern, sentence in form.rules:
        if isinstance(error, error_class) and rule_field in (None, kind) and (m := pattern.search(said)):
            return FormError(field if field in form.fields else None, sentence(m, words))
    if field in form.fields:
        return FormError(field, catalog.gettext("Check this field (%(detail)s).") % {"detail": said})
    return FormError(None, catalog.gettext("This could not be done: %(detail)s") % {"detail": error.message})
