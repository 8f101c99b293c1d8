"""The conversation page's Actions card: labels, errors in the agent's language beside their field
with what was typed kept, what the agent may still give, the pending style, the currency offered."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest

from cape.actions import service
from cape.actions.authority import set_authority
from cape.kit.clock import utcnow
from cape.kit.errors import CapeError, InvalidInput
from cape.models import Action, ActionStatus, ActionType, Order, Role
from cape.web.action_errors import explain
from tests.conftest import Actor
from tests.fixtures.factories import make_inbound, make_token, make_user


def _actor(db, *, language: str, name: str) -> Actor:
    user = make_user(db, role=Role.agent, name=name, language=language)
    actor = Actor(user, make_token(db, user))
    db.commit()
    return actor


@pytest.fixture
def amelie(db) -> Actor:
    return _actor(db, language="fr", name="Amélie Agent")


@pytest.fixture
def mads(db, carol_admin) -> Actor:
    """A Danish agent whose authority is in kroner."""
    actor = _actor(db, language="da", name="Mads Agent")
    set_authority(db, actor=carol_admin.user, user=actor.user, currency="DKK",
                  per_action=dict.fromkeys((t.value for t in ActionType), 2_100_00),
                  per_customer_30d=4_200_00, daily_budget=10_500_00)  # fmt: skip
    db.commit()
    return actor


def card(html: str) -> str:
    """The Actions card's markup alone."""
    start = html.index('class="card actions-card"')
    return html[start : html.index("</section>", start)]


def selected(html: str, select_id: str) -> str | None:
    """The value of the option chosen in one select of the card."""
    block = re.search(rf'<select id="{select_id}".*?</select>', html, re.S).group(0)
    found = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', block)
    return found.group(1) if found else None


def post(client, conversation, actor, **form):
    fields = {"type": "goodwill", "amount": "", "currency": "USD", "reason": "other", "note": ""} | form
    response = client.post(f"/conversations/{conversation.id}/actions", data=fields, headers=actor.headers)
    assert response.status_code == 200
    return card(response.text)


# --- labels ----------------------------------------------------------------------------------------


def test_the_card_shows_labels_never_codes(client, db, conversation, order, alice_agent):
    post(client, conversation, alice_agent, type="store_credit", amount="10", reason="late_delivery")
    post(client, conversation, alice_agent, type="discount_code", amount="900", reason="changed_mind")
    html = card(client.get(f"/conversations/{conversation.id}", headers=alice_agent.headers).text)
    visible = re.sub(r"<[^>]+>", " ", html)  # the text a person reads, attributes left out
    for label in ("Store credit", "Late delivery", "Done", "Discount code", "Waiting for approval", "Goodwill gesture",
                  "Re-ship", "Free service", "Lost in transit", "Changed their mind"):  # fmt: skip
        assert label in visible
    for code in ("store_credit", "late_delivery", "pending_approval", "executed", "discount_code", "changed_mind"):
        assert code not in visible


def test_a_reversed_action_says_so_and_offers_no_second_reversal(client, db, conversation, alice_agent):
    post(client, conversation, alice_agent, type="store_credit", amount="10")
    action = db.query(Action).one()
    response = client.post(f"/actions/{action.id}/reverse", headers=alice_agent.headers | {"HX-Prompt": "typo"})
    html = card(response.text)
    original = re.search(rf'<li data-action-id="{action.id}".*?</li>', html, re.S).group(0)
    assert 'data-status="reversed"' in original and "Reversed" in original and "data-reverse" not in original
    assert "Reversal" in html


# --- errors: translated, beside their field, what was typed kept -------------------------------------


def test_a_french_agents_bad_amount_is_explained_in_french_beside_it_and_the_form_keeps_what_was_typed(
    client, db, conversation, amelie
):
    html = post(client, conversation, amelie, type="store_credit", amount="douze", currency="EUR",
                reason="late_delivery", note="colis en retard")  # fmt: skip
    error = re.search(r'<p class="error field-error" id="action-amount-error"[^>]*>(.*?)</p>', html).group(1)
    assert unescape(error) == "Saisissez un montant comme 120,50."
    assert re.search(r'<input id="action-amount"[^>]*value="douze"[^>]*aria-invalid="true"', html)
    assert 'aria-describedby="action-amount-error"' in html
    assert selected(html, "action-type") == "store_credit"
    assert selected(html, "action-currency") == "EUR"
    assert selected(html, "action-reason") == "late_delivery"
    assert 'value="colis en retard"' in html
    assert "a number such as" not in html and db.query(Action).count() == 0


@pytest.fixture
def other_order(db) -> Order:
    stranger = make_inbound(db, email="someone.else@example.org")
    order = Order(customer_id=stranger.customer_id, number="X-9", currency="USD", total_amount=10_00,
                  placed_at=utcnow())  # fmt: skip
    db.add(order)
    db.commit()
    return order


# Every refusal taking an action can meet, with the field it is shown beside and the French sentence.
REFUSALS = {
    "not a number": ({"amount": "douze"}, "amount", "Saisissez un montant comme 120,50."),
    "negative": ({"amount": "-5"}, "amount", "Le montant ne peut pas être négatif."),
    "zero": ({"amount": "0"}, "amount", "Saisissez un montant supérieur à zéro."),
    "huge": ({"amount": "1e30"}, "amount", "Le montant est trop élevé\u00a0: au plus 10\u202f000\u202f000\u202f000,00"),
    "overflow": ({"amount": "1e999999999"}, "amount", "Le montant est trop élevé"),
    "decimals": ({"amount": "1.005"}, "amount", "Les montants en USD ont au plus 2 décimales."),
    "no decimals": ({"amount": "1.5", "currency": "JPY"}, "amount", "Les montants en JPY n'ont pas de décimales."),
    "above the order": ({"type": "refund", "amount": "500", "order": True}, "amount",
                        "Il ne reste que 480,00\xa0$US à rembourser sur la commande T-1001"),
    "currency": ({"amount": "5", "currency": "XX"}, "currency", "Choisissez une devise."),
    "order's currency": ({"amount": "5", "currency": "EUR", "order": True}, "currency",
                         "La commande T-1001 est en USD\u00a0: choisissez cette devise, ou aucune commande."),
    "reason": ({"amount": "5", "reason": " "}, "reason", "Choisissez un motif."),
    "type": ({"type": "teleport", "amount": "5"}, "type", "Choisissez une action."),
    "order id": ({"amount": "5", "order_id": "12abc"}, "order_id", "Choisissez une commande de ce client."),
    "someone else's order": ({"amount": "5", "other_order": True}, "order_id",
                             "Choisissez une commande de ce client."),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS)
def test_every_refusal_reads_in_the_agents_language_beside_its_field(
    client, db, conversation, order, other_order, amelie, case
):
    form, field, french = REFUSALS[case]
    form = dict(form)
    if form.pop("order", False):
        form["order_id"] = str(order.id)
    if form.pop("other_order", False):
        form["order_id"] = str(other_order.id)
    html = post(client, conversation, amelie, **form)
    shown = re.search(rf'id="action-{field}-error"[^>]*>(.*?)</p>', html)
    assert shown is not None, html
    assert unescape(shown.group(1)).startswith(french)
    assert db.query(Action).count() == 0


def test_refusals_when_reversing_read_in_the_agents_language(client, db, conversation, amelie, bob_supervisor):
    post(client, conversation, amelie, amount="5", currency="USD")
    done = db.query(Action).one()
    hx = amelie.headers | {"HX-Prompt": "erreur"}
    client.post(f"/actions/{done.id}/reverse", headers=hx)
    again = card(client.post(f"/actions/{done.id}/reverse", headers=hx).text)
    assert "Cette action a déjà été annulée." in again
    counter = db.query(Action).filter(Action.reverses_id == done.id).one()
    assert "Une annulation ne peut pas être annulée à son tour." in card(
        client.post(f"/actions/{counter.id}/reverse", headers=hx).text
    )
    post(client, conversation, amelie, amount="900", currency="USD")  # waiting for approval
    waiting = db.query(Action).filter(Action.status == ActionStatus.pending_approval).one()
    assert "Seule une action effectuée peut être annulée." in card(
        client.post(f"/actions/{waiting.id}/reverse", headers=hx).text
    )


@pytest.mark.parametrize(
    "error",
    [
        InvalidInput("amount", "something new"),
        InvalidInput("elsewhere", "something new"),
        CapeError("something new"),
    ],
)
def test_an_unknown_refusal_still_shows_translated_with_the_detail(error):
    shown = explain(error, language="fr", currency="EUR")
    assert "something new" in shown.message and ("Vérifiez" in shown.message or "Impossible" in shown.message)
    assert shown.field == ("amount" if error.__class__ is InvalidInput and error.field == "amount" else None)


def test_a_known_reason_reads_in_each_language():
    for language, expected in (("en", "Choose a reason."), ("fr", "Choisissez un motif."), ("da", "Vælg en årsag.")):
        shown = explain(InvalidInput("reason", "say why"), language=language, currency="EUR")
        assert (shown.field, shown.message) == ("reason", expected)


# --- what the agent may still give -------------------------------------------------------------------


def test_the_headroom_shown_follows_the_policy_after_a_spend(client, db, conversation, alice_agent, carol_admin):
    set_authority(db, actor=carol_admin.user, user=alice_agent.user, currency="USD",
                  per_action={"store_credit": 300_00, "refund": 200_00, "goodwill": None},
                  per_customer_30d=600_00, daily_budget=1_500_00)  # fmt: skip
    db.commit()
    post(client, conversation, alice_agent, type="store_credit", amount="120", currency="USD")
    # Another agent's gift to the same customer counts for the customer, not for Alice's day.
    service.take_action(db, conversation=conversation, actor=carol_admin.user, action_type=ActionType.goodwill,
                        amount=30_00, currency="USD", reason="loyalty")  # fmt: skip
    db.commit()
    html = card(client.get(f"/conversations/{conversation.id}", headers=alice_agent.headers).text)
    assert re.search(r"data-customer-headroom>\$450\.00 left for this customer \(of \$600\.00 over 30 days\)<", html)
    assert re.search(r"data-today-headroom>\$1,380\.00 left for you today \(of \$1,500\.00\)<", html)
    assert 'data-customer-left="45000"' in html and 'data-today-left="138000"' in html
    assert re.search(r'<option value="store_credit"[^>]*data-limit="30000"', html)
    assert re.search(r'<option value="refund" selected[^>]*data-limit="20000"', html)
    assert re.search(r'<option value="goodwill"[^>]*data-limit-text="No limit per action"(?![^>]*data-limit=)', html)
    assert re.search(r'<option value="reship"[^>]*data-limit="0"', html)  # a type the policy leaves out
    assert re.search(r"data-per-action>Up to \$200\.00 per action<", html)  # the limit of the chosen type (refund)


def test_headroom_is_what_take_action_allows(db, conversation, alice_agent):
    headroom = service.authority_headroom(db, user=alice_agent.user, customer_id=conversation.customer_id)
    most = headroom.most_for(ActionType.refund)
    assert most == 500_00  # the default agent's per-action limit, below the customer's and the day's
    within = service.take_action(db, conversation=conversation, actor=alice_agent.user, action_type=ActionType.refund,
                                 amount=most, currency="USD", reason="damaged")  # fmt: skip
    assert within.status is ActionStatus.executed
    later = service.authority_headroom(db, user=alice_agent.user, customer_id=conversation.customer_id,
                                       now=utcnow() + timedelta(days=1))  # fmt: skip
    assert (later.customer_30d_left, later.today_left) == (500_00, 2_000_00)
    most = later.most_for(ActionType.refund)
    over = service.take_action(db, conversation=conversation, actor=alice_agent.user, action_type=ActionType.refund,
                               amount=most + 1, currency="USD", reason="damaged")  # fmt: skip
    assert over.status is ActionStatus.pending_approval


def test_the_page_warns_with_the_limits_texts_in_the_agents_language(client, db, conversation, mads):
    html = card(client.get(f"/conversations/{conversation.id}", headers=mads.headers).text)
    assert 'data-authority-currency="DKK"' in html
    assert "Refusion: over din grænse på 2.100,00\xa0kr. pr. handling." in html
    assert "Dine beføjelser er i DKK" in html


# --- the result ------------------------------------------------------------------------------------


def test_above_the_per_action_limit_the_result_is_pending_not_done(client, db, conversation, alice_agent):
    html = post(client, conversation, alice_agent, type="goodwill", amount="600", currency="USD")
    notice = re.search(r'<(\w+) class="notice ([\w ]+)"[^>]*data-action-notice[^>]*>', html)
    assert notice.group(2) == "pending" and 'data-status="pending_approval"' in notice.group(0)
    assert "Sent to a supervisor for approval" in html and "per-action limit" in html
    assert 'class="notice done"' not in html
    done = post(client, conversation, alice_agent, type="goodwill", amount="60", currency="USD")
    assert re.search(r'class="notice done"[^>]*data-action-notice', done) and 'notice pending" role' not in done


# --- the currency offered ------------------------------------------------------------------------------


def test_a_danish_agent_is_offered_the_orders_currency_not_her_own(client, db, conversation, mads):
    older = Order(customer_id=conversation.customer_id, number="NS-1", currency="USD", total_amount=10_00,
                  placed_at=utcnow() - timedelta(days=90))  # fmt: skip
    latest = Order(customer_id=conversation.customer_id, number="NS-2", currency="EUR", total_amount=89_00,
                   placed_at=utcnow() - timedelta(days=2))  # fmt: skip
    db.add_all([latest, older])
    db.commit()
    html = card(client.get(f"/conversations/{conversation.id}", headers=mads.headers).text)
    assert selected(html, "action-currency") == "EUR"  # the customer's last order's
    assert re.search(rf'<option value="{older.id}" data-currency="USD"', html)
    assert re.search(rf'<option value="{latest.id}" data-currency="EUR"', html)
    # After a refusal the order and currency chosen stay chosen.
    kept = post(client, conversation, mads, type="refund", order_id=str(older.id), currency="USD", amount="x")
    assert selected(kept, "action-order") == str(older.id) and selected(kept, "action-currency") == "USD"


def test_without_orders_the_deployments_currency_is_offered(client, app, db, conversation, mads):
    app.state.settings = app.state.settings.model_copy(update={"default_currency": "SEK"})
    html = card(client.get(f"/conversations/{conversation.id}", headers=mads.headers).text)
    assert selected(html, "action-currency") == "SEK"


def test_the_default_currency_setting_is_an_iso_code():
    from pydantic import ValidationError

    from cape.config import Settings

    assert Settings(default_currency="eur").default_currency == "EUR"
    with pytest.raises(ValidationError):
        Settings(default_currency="euro")
