"""The action forms beyond the Actions card speak the viewer's language: the authority page's
errors beside their field with what was typed kept, the approvals list's refusals, the reason a
reversal records, and French punctuation in "label: value" texts."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from cape.models import Action, ActionStatus, ActionType, AuthorityPolicy
from tests.fixtures.factories import make_inbound

TEMPLATES = Path(__file__).resolve().parents[2] / "cape" / "web" / "templates"


def speaking(db, actor, language: str):
    actor.user.language = language
    db.commit()
    return actor


def policy_form(html: str, key: str) -> str:
    """The markup of one form of the authority page: "role-agent", "user-12"."""
    start = html.index(f'id="policy-{key}"')
    return html[start : html.index("</form>", start)]


def field_error(form: str, name: str) -> str | None:
    found = re.search(rf'<p class="error field-error" id="[^"]+" role="alert" data-field-error="{re.escape(name)}">'
                      r"(.*?)</p>", form)  # fmt: skip
    return unescape(found.group(1)) if found else None


def field_value(form: str, name: str) -> str:
    return unescape(re.search(rf'<input id="[^"]+" name="{re.escape(name)}" value="([^"]*)"', form).group(1))


def post_policy(client, actor, **fields):
    form = {"role": "agent", "currency": "EUR", "per_customer_30d": "", "daily_budget": ""} | fields
    return client.post("/admin/authority", data=form, headers=actor.headers)


# --- the authority page ------------------------------------------------------------------------


def test_a_french_admins_bad_limit_is_explained_in_french_beside_it_and_the_form_keeps_what_was_typed(
    client, db, carol_admin
):
    speaking(db, carol_admin, "fr")
    response = post_policy(client, carol_admin, **{"per_action.refund": "douze", "daily_budget": "250,5"})
    assert response.status_code == 422
    form = policy_form(response.text, "role-agent")
    assert field_error(form, "per_action.refund") == "Saisissez un montant comme 120,50."
    assert re.search(r'name="per_action\.refund" value="douze"[^>]*aria-invalid="true"', form)
    assert field_value(form, "daily_budget") == "250,5" and field_value(form, "currency") == "EUR"
    assert form.count('role="alert"') == 1  # beside its field, nowhere else
    assert "a number such as" not in response.text and "per_action" not in unescape(form).split("<h2>")[0]
    # The other forms show what is saved, untouched by what was typed here.
    assert field_value(policy_form(response.text, "role-supervisor"), "daily_budget") != "250,5"
    assert db.query(AuthorityPolicy).count() == 0


AUTHORITY_REFUSALS = {
    # case: (form fields, the field it is shown beside or None for the form, the French sentence)
    "not a currency": ({"currency": "EURO", "daily_budget": "5"}, "currency",
                       "Saisissez un code de devise comme USD, EUR ou DKK."),
    "no currency": ({"currency": ""}, "currency", "Saisissez un code de devise comme USD, EUR ou DKK."),
    "negative": ({"per_customer_30d": "-5"}, "per_customer_30d", "Le montant ne peut pas être négatif."),
    "too many decimals": ({"per_action.goodwill": "1.005"}, "per_action.goodwill",
                          "Les montants en EUR ont au plus 2 décimales."),
    "no decimals": ({"currency": "JPY", "daily_budget": "1.5"}, "daily_budget",
                    "Les montants en JPY n'ont pas de décimales."),
    "huge": ({"daily_budget": "1e30"}, "daily_budget", "Le montant est trop élevé\u00a0: au plus 10\u202f000"),
    "overflow": ({"daily_budget": "1e999999999"}, "daily_budget", "Le montant est trop élevé"),
}  # fmt: skip


@pytest.mark.parametrize("case", AUTHORITY_REFUSALS)
def test_every_refusal_on_the_authority_page_reads_in_french_beside_its_field(client, db, carol_admin, case):
    speaking(db, carol_admin, "fr")
    fields, name, french = AUTHORITY_REFUSALS[case]
    response = post_policy(client, carol_admin, **fields)
    assert response.status_code == 422
    form = policy_form(response.text, "role-agent")
    shown = field_error(form, name)
    assert shown is not None and shown.startswith(french), form
    assert db.query(AuthorityPolicy).count() == 0


@pytest.mark.parametrize(
    ("fields", "french"),
    [
        ({"role": "", "user_id": ""}, "Ce formulaire vaut pour un rôle ou une personne\u00a0: rechargez la page"),
        ({"role": "", "user_id": "987654"}, "Cette personne est introuvable\u00a0: rechargez la page."),
        ({"role": "", "user_id": "12abc"}, "Cette personne est introuvable\u00a0: rechargez la page."),
        ({"role": "wizard"}, "Ce rôle est introuvable\u00a0: rechargez la page."),
    ],
)
def test_a_form_for_no_one_on_the_page_is_explained_at_the_top_in_french(client, db, carol_admin, fields, french):
    speaking(db, carol_admin, "fr")
    response = post_policy(client, carol_admin, **fields)
    assert response.status_code == 422
    top = response.text[: response.text.index('id="policy-role-')]
    assert re.search(rf'<p class="error" role="alert">{re.escape(french)}', unescape(top)), top[-600:]


def test_a_person_s_form_explains_in_danish_and_a_saved_form_says_so_beside_it(client, db, alice_agent, carol_admin):
    speaking(db, carol_admin, "da")
    person = f"user-{alice_agent.user.id}"
    fields = {"role": "", "user_id": str(alice_agent.user.id), "currency": "DKK"}
    wrong = post_policy(client, carol_admin, **fields, daily_budget="mange")
    assert field_error(policy_form(wrong.text, person), "daily_budget") == "Indtast et beløb som 120,50."
    saved = post_policy(client, carol_admin, **fields, daily_budget="1500,00")
    assert saved.status_code == 200
    assert '<p class="notice" role="status">Gemt.</p>' in policy_form(saved.text, person)
    assert 'action="/admin/authority#policy-' + person + '"' in saved.text  # the browser comes back to it
    assert db.query(AuthorityPolicy).one().daily_budget == 1500_00


# --- approvals -----------------------------------------------------------------------------------


@pytest.fixture
def waiting_request(client, db, alice_agent) -> int:
    conversation_id = make_inbound(db, email="lea@example.org", name="Léa").conversation_id
    db.commit()
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/actions",
        json={"type": ActionType.goodwill.value, "amount": 900_00, "currency": "USD", "reason": "other"},
        headers=alice_agent.headers,
    )
    action_id = response.json()["id"]
    assert db.get(Action, action_id).status is ActionStatus.pending_approval
    return action_id


def test_a_refused_decision_reads_in_the_supervisors_language(client, db, bob_supervisor, waiting_request):
    speaking(db, bob_supervisor, "fr")
    client.post(f"/approvals/{waiting_request}/approve", headers=bob_supervisor.headers)
    again = client.post(f"/approvals/{waiting_request}/decline", headers=bob_supervisor.headers).text
    assert '<p class="error" role="alert">Quelqu&#39;un a déjà décidé de cette demande.</p>' in again
    gone = client.post("/approvals/987654/approve", headers=bob_supervisor.headers).text
    assert "Cette demande n&#39;existe plus" in gone and "not found" not in gone


def test_a_supervisor_s_own_request_is_refused_in_danish(client, db, bob_supervisor):
    speaking(db, bob_supervisor, "da")
    conversation_id = make_inbound(db, email="lea@example.org", name="Léa").conversation_id
    db.commit()
    own = client.post(
        f"/api/v1/conversations/{conversation_id}/actions",
        json={"type": "goodwill", "amount": 10**9, "currency": "USD", "reason": "other"},
        headers=bob_supervisor.headers,
    ).json()["id"]
    refused = client.post(f"/approvals/{own}/approve", headers=bob_supervisor.headers).text
    assert "En anden skal tage stilling til din egen anmodning." in refused and "someone else" not in refused


# --- the reason a reversal records ---------------------------------------------------------------


def _done_action(client, db, actor) -> Action:
    conversation_id = make_inbound(db, email="lea@example.org", name="Léa").conversation_id
    db.commit()
    form = {"type": "store_credit", "amount": "10", "currency": "USD", "reason": "late_delivery"}
    client.post(f"/conversations/{conversation_id}/actions", data=form, headers=actor.headers)
    return db.query(Action).one()


@pytest.mark.parametrize(("language", "shown"), [("fr", "Aucun motif donné"), ("da", "Ingen årsag angivet")])
def test_a_reversal_without_a_reason_says_so_in_the_agents_language(client, db, alice_agent, language, shown):
    speaking(db, alice_agent, language)
    done = _done_action(client, db, alice_agent)
    card = client.post(f"/actions/{done.id}/reverse", headers=alice_agent.headers | {"HX-Prompt": ""}).text
    counter = db.query(Action).filter(Action.reverses_id == done.id).one()
    line = re.search(rf'<li data-action-id="{counter.id}".*?</li>', card, re.S).group(0)
    assert f'<span class="muted">{shown} · Alice Agent' in line
    assert "reversed from" not in card and "no_reason_given" not in card


def test_a_typed_reason_beyond_latin_1_reads_as_typed(client, db, alice_agent):
    """htmx percent-encodes a prompt's answer that a header cannot carry ("€") and says so."""
    done = _done_action(client, db, alice_agent)
    headers = alice_agent.headers | {"HX-Prompt": "double%20cr%C3%A9dit%20de%2010%20%E2%82%AC",
                                     "HX-Prompt-URI-AutoEncoded": "true"}  # fmt: skip
    client.post(f"/actions/{done.id}/reverse", headers=headers)
    assert db.query(Action).filter(Action.reverses_id == done.id).one().reason == "double crédit de 10 €"


# --- "label: value" in French --------------------------------------------------------------------


def test_french_puts_a_no_break_space_before_the_colon_of_a_label(client, db, bob_supervisor):
    speaking(db, bob_supervisor, "fr")
    page = unescape(client.get("/review", headers=bob_supervisor.headers).text)
    assert "Conversations résolues\u00a0: <strong>" in page
    assert "actions par conversation résolue\u00a0: <strong" in page
    speaking(db, bob_supervisor, "en")
    assert "Resolved conversations: <strong>" in client.get("/review", headers=bob_supervisor.headers).text


def test_a_customer_s_words_are_quoted_as_the_viewer_s_language_quotes(client, db, alice_agent, bob_supervisor):
    conversation_id = make_inbound(db, email="lea@example.org", name="Léa").conversation_id
    db.commit()
    moment = {"user_id": alice_agent.user.id, "quote": "Merci Alice"}
    client.post(f"/api/v1/conversations/{conversation_id}/hero-moments", json=moment, headers=bob_supervisor.headers)
    for language, quoted in (("fr", "«\u00a0Merci Alice\u00a0»"), ("da", "“Merci Alice”"), ("en", "“Merci Alice”")):
        speaking(db, alice_agent, language)
        assert f"<blockquote>{quoted}</blockquote>" in client.get("/heroes", headers=alice_agent.headers).text


def test_no_template_writes_a_colon_after_a_translated_label():
    by_hand = re.compile(r"_\(\s*(\"[^\"]*\"|'[^']*')\s*\)\s*\}\}\s*:")  # {{ _("Label") }}: use colon(_("Label"))
    offenders = [
        f"{path.name}:{n}" for path in TEMPLATES.glob("*.html")
        for n, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)
    ]  # fmt: skip
    assert not offenders, f"write colon(_(...)) so each language punctuates its own way: {offenders}"
