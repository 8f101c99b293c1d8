"""Demo data: a month at Nordsti, a small outdoor and clothing shop, in English, French and Danish.

``seed_demo`` creates the demo sign-ins (README), a support mailbox (``support@example.com``, the
default outbound mailbox; mail reaches it through the SMTP listener), the agents' authority, and
the last month of the shop's support: about 25 customers writing by email, through the contact
form and in the website chat (``chat:demo``, "Website chat", on ``/widget/demo``), their
orders, replies and internal notes, assignments, tags, resolutions and reopenings, actions
within and above authority (one approved, one declined, two still waiting for Sam), hero
moments, an urgent complaint, a repeat problem, and work left in the inbox: conversations open
and waiting, pending, snoozed. And Olivia's four snow tyres, from a customer who never bought
anything here.

**Through the services.** Every message, reply, change, action and hero moment is made by the
service the product uses (``receive_email``, ``ingest``, ``add_reply``, ``update_conversation``,
``take_action``, ``approve_action``, ``decline_action``, ``record_hero_moment``), so the history,
audit log and spend counters are what real use would leave.

**In the past.** Each step runs inside ``cape.kit.clock.clock_set_to(its moment)``: the services
stamp their rows as they always do, and every time agrees (messages, activity, actions, audit,
``last_activity_at``, ``waiting_since``, ``first_response_at``, ``resolved_at``). Moments are
written as "so many days ago at HH:MM" in shop time (CET) or "so many hours ago", are kept in
order within a conversation and never in the future, and the steps of all conversations are
played in time order, so that ids grow with time and the 30-day and daily limits see what had
happened by then.

**Replies of the past were sent.** They stand for mail that went out at the time, so each is
recorded as sent (``record_attempt``) from the demo mailbox, with its Message-ID, and the
customer's later mail threads to it by References, as real mail does. Nothing is queued, so no
mail ever goes to the example addresses, even where a relay is configured. Replies written in the
running demo take the real send path: without a relay they are marked undeliverable, with why.

**Idempotent.** Users are keyed on their email, the mailbox on its address, orders on their
number, and a conversation on its first message's external id (the Message-ID of an email, or
``demo-<story>`` for the contact form and the chat): one query finds which conversations exist, and only the
missing ones are played. A second run adds nothing. (A conversation interrupted halfway is not
completed later; a demo database is thrown away, not repaired.)

Chat replies of the past reached the visitor's widget and were seen (``delivered``). Later
capabilities (SMS, reviews...) add their own stories on their channels here, so that
a newcomer sees every feature populated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from cape.actions.authority import set_authority
from cape.actions.service import approve_action, decline_action, get_action, take_action
from cape.auth.service import create_user
from cape.channels.base import InboundMessage, Sender, builtin_channel
from cape.channels.chat.service import create_chat_channel, touch_visitor
from cape.channels.email.send import prepare_reply
from cape.channels.email.service import (
    channel_key,
    create_email_channel,
    default_outbound_channel,
    receive_email,
    set_default_outbound,
)
from cape.channels.outbound import record_attempt, record_report
from cape.config import Settings
from cape.conversations.service import add_reply, get_conversation, ingest, update_conversation
from cape.insights.heroes import record_hero_moment
from cape.kit.clock import clock_set_to, utcnow
from cape.models import (
    ActionType,
    AuthorityPolicy,
    Channel,
    ChannelKind,
    ChatVisitor,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Message,
    Order,
    Priority,
    Role,
    User,
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: Role
    language: str
    password: str


DEMO_USERS = (
    DemoUser("admin@example.com", "Ada Admin", Role.admin, "en", "cape-admin"),
    DemoUser("sam@example.com", "Sam Supervisor", Role.supervisor, "en", "cape-supervisor"),
    DemoUser("amelie@example.com", "Amélie Agent", Role.agent, "fr", "cape-agent"),
    DemoUser("mads@example.com", "Mads Agent", Role.agent, "da", "cape-agent"),
)
# Who is who in the stories below.
_AGENTS = {"ada": "admin@example.com", "sam": "sam@example.com", "amelie": "amelie@example.com",
           "mads": "mads@example.com"}  # fmt: skip

MAILBOX = "support@example.com"
MAILBOX_NAME = "Nordsti support"
CHAT_KEY, CHAT_NAME = "chat:demo", "Website chat"
SHOP_TIME = timezone(timedelta(hours=1), "CET")
# The shop set Cape up a while before the month the stories tell.
SET_UP_DAYS_AGO = 45


# --- the vocabulary of a story ---------------------------------------------------------------------


@dataclass(frozen=True)
class At:
    """A moment: ``days`` ago at ``clock`` (shop time), or ``hours`` ago."""

    days: int = 0
    clock: str = "12:00"
    hours: float = 0


def D(days: int, clock: str) -> At:
    return At(days=days, clock=clock)


def H(hours: float) -> At:
    return At(hours=hours)


@dataclass(frozen=True)
class Write:
    """The customer writes: the first opens the conversation, the next ones answer our last mail."""

    at: At
    body: str


@dataclass(frozen=True)
class Reply:
    at: At
    agent: str
    body: str


@dataclass(frozen=True)
class Note:
    at: At
    agent: str
    body: str


@dataclass(frozen=True)
class Change:
    at: At
    agent: str
    status: ConversationStatus | None = None
    assignee: str | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] | None = None
    snooze_days: int | None = None  # snoozed until so many days after the seed runs


@dataclass(frozen=True)
class Act:
    at: At
    agent: str
    type: ActionType
    amount: int
    reason: str
    note: str | None = None
    order: str | None = None
    items: tuple[dict, ...] = ()
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Decide:
    """A supervisor decides on the conversation's last action."""

    at: At
    agent: str
    approve: bool
    note: str


@dataclass(frozen=True)
class Hero:
    """The customer's last message praises ``agent``; a colleague may record it (``recorded_by``)."""

    at: At
    agent: str
    recorded_by: str | None = None


Step = Write | Reply | Note | Change | Act | Decide | Hero


@dataclass(frozen=True)
class DemoOrder:
    number: str
    days_ago: int
    status: str
    items: tuple[tuple[str, str, int, int], ...]  # sku, name, quantity, unit amount (minor units)


@dataclass(frozen=True)
class DemoCustomer:
    name: str
    email: str
    language: str
    currency: str
    orders: tuple[DemoOrder, ...] = ()


@dataclass(frozen=True)
class Story:
    key: str
    customer: str
    channel: str  # "email", "web" (the contact form) or "chat" (the website's chat, signed in)
    subject: str
    steps: tuple[Step, ...]


OPEN, PENDING, SNOOZED, RESOLVED = (ConversationStatus.open, ConversationStatus.pending,
                                    ConversationStatus.snoozed, ConversationStatus.resolved)  # fmt: skip
REFUND, CREDIT, CODE, RESHIP, SERVICE, GOODWILL = (
    ActionType.refund, ActionType.store_credit, ActionType.discount_code,
    ActionType.reship, ActionType.service, ActionType.goodwill,
)  # fmt: skip


# --- the shop's customers --------------------------------------------------------------------------


def _order(number: str, days_ago: int, status: str, *items: tuple[str, str, int, int]) -> DemoOrder:
    return DemoOrder(number, days_ago, status, items)


CUSTOMERS = {
    # Ireland and the United Kingdom
    "olivia": DemoCustomer("Olivia Bennett", "olivia.bennett@example.org", "en", "EUR"),  # never bought here
    "siobhan": DemoCustomer("Siobhan Murphy", "siobhan.murphy@example.ie", "en", "EUR", (
        _order("NS-20114", 34, "delivered", ("PACK-30", "Fjord 30 L daypack", 1, 8900)),)),
    "james": DemoCustomer("James Whitaker", "james.whitaker@example.co.uk", "en", "GBP", (
        _order("NS-20391", 20, "delivered", ("BOOT-HK-44", "Hærvej walking boots, 44", 1, 14900)),)),
    "priya": DemoCustomer("Priya Shah", "priya.shah@example.co.uk", "en", "GBP", (
        _order("NS-20205", 29, "delivered", ("DOWN-W-M", "Skagen down jacket, women's M", 1, 21900)),)),
    "daniel": DemoCustomer("Daniel O'Connor", "daniel.oconnor@example.ie", "en", "EUR", (
        _order("NS-20122", 33, "delivered", ("TENT-2P", "Lyngen 2-person tent", 1, 32900)),)),
    "emily": DemoCustomer("Emily Clarke", "emily.clarke@example.org", "en", "EUR", (
        _order("NS-20288", 24, "delivered", ("MERINO-BL-S", "Merino base layer, S", 2, 5900)),)),
    "hannah": DemoCustomer("Hannah Byrne", "hannah.byrne@example.ie", "en", "EUR", (
        _order("NS-20455", 10, "delivered", ("SNOWSUIT-K-110", "Kids' snowsuit, 110", 1, 11900)),)),
    "tom": DemoCustomer("Tom Fletcher", "tom.fletcher@example.co.uk", "en", "GBP", (
        _order("NS-20340", 22, "delivered", ("RAIN-M-L", "Vejle rain jacket, men's L", 1, 12900)),
        _order("NS-20431", 10, "delivered", ("FLEECE-M-M", "Fleece jacket, men's M", 1, 5900)))),
    # France
    "camille": DemoCustomer("Camille Laurent", "camille.laurent@example.fr", "fr", "EUR", (
        _order("NS-20301", 33, "delivered", ("SCARF-WOOL", "Écharpe en laine", 1, 8900)),)),
    "jean": DemoCustomer("Jean Dupont", "jean.dupont@example.fr", "fr", "EUR", (
        _order("NS-20262", 27, "delivered", ("CHINO-42", "Pantalon chino, 42", 1, 6900)),)),
    "elodie": DemoCustomer("Élodie Martin", "elodie.martin@example.fr", "fr", "EUR", (
        _order("NS-20170", 33, "delivered", ("RAIN-W-S", "Veste de pluie Vejle, femme S", 1, 18900)),)),
    "nicolas": DemoCustomer("Nicolas Bernard", "nicolas.bernard@example.fr", "fr", "EUR", (
        _order("NS-20350", 15, "delivered", ("BAG-15", "Sac de couchage Dovre -15 °C", 1, 24900)),)),
    "sophie": DemoCustomer("Sophie Petit", "sophie.petit@example.fr", "fr", "EUR", (
        _order("NS-20112", 35, "delivered", ("TSHIRT-MERINO-W", "T-shirt mérinos, femme", 1, 6400)),
        _order("NS-20402", 20, "lost", ("DOWN-W-S", "Doudoune Skagen, femme S", 1, 34900),
               ("SOCKS-3", "Chaussettes en laine (x3)", 1, 2400)))),
    "lucas": DemoCustomer("Lucas Moreau", "lucas.moreau@example.fr", "fr", "EUR", (
        _order("NS-20133", 32, "delivered", ("BEANIE", "Bonnet en laine", 1, 2900)),)),
    "chloe": DemoCustomer("Chloé Roux", "chloe.roux@example.fr", "fr", "EUR", (
        _order("NS-20218", 29, "delivered", ("SWEATER-W-M", "Pull en laine, femme M", 1, 11900)),)),
    "antoine": DemoCustomer("Antoine Girard", "antoine.girard@example.fr", "fr", "EUR"),
    "mathilde": DemoCustomer("Mathilde Fontaine", "mathilde.fontaine@example.fr", "fr", "EUR"),
    # Denmark
    "freja": DemoCustomer("Freja Nielsen", "freja.nielsen@example.dk", "da", "DKK", (
        _order("NS-20310", 25, "delivered", ("JACKET-W-S", "Vinterjakke, small", 1, 149900)),)),
    "lars": DemoCustomer("Lars Hansen", "lars.hansen@example.dk", "da", "DKK", (
        _order("NS-20375", 18, "delivered", ("BOOT-HK-43", "Hærvej vandrestøvler, 43", 1, 119900)),)),
    "mette": DemoCustomer("Mette Jensen", "mette.jensen@example.dk", "da", "DKK", (
        _order("NS-20190", 27, "delivered", ("TENT-3P", "Lyngen 3-personers telt", 1, 349900)),)),
    "soren": DemoCustomer("Søren Pedersen", "soren.pedersen@example.dk", "da", "DKK", (
        _order("NS-20470", 5, "delivered", ("FLEECE-M-L", "Fleecetrøje, herre L", 1, 49900)),)),
    "thomas": DemoCustomer("Thomas Møller", "thomas.moller@example.dk", "da", "DKK", (
        _order("NS-20144", 34, "delivered", ("RAIN-M-M", "Vejle regnjakke, herre M", 1, 129900)),)),
    "ida": DemoCustomer("Ida Larsen", "ida.larsen@example.dk", "da", "DKK"),
    "rasmus": DemoCustomer("Rasmus Kristensen", "rasmus.kristensen@example.dk", "da", "DKK", (
        _order("NS-19877", 420, "delivered", ("BAG-5", "Dovre sovepose -5 °C", 1, 99900)),)),
    "anne": DemoCustomer("Anne Poulsen", "anne.poulsen@example.dk", "da", "DKK", (
        _order("NS-20233", 26, "delivered", ("MERINO-W-M", "Merino uldundertrøje, M", 2, 39900)),
        _order("NS-20440", 11, "delivered", ("BEANIE", "Uldhue", 1, 19900)))),
    "jonas": DemoCustomer("Jonas Holm", "jonas.holm@example.dk", "da", "DKK", (
        _order("NS-20480", 3, "cancelled", ("HEADLAMP", "Pandelampe 400 lm", 1, 34900)),)),
    "karen": DemoCustomer("Karen Østergaard", "karen.ostergaard@example.dk", "da", "DKK", (
        _order("NS-20260", 26, "delivered", ("GLOVES-W", "Skindhandsker, dame", 1, 44900)),)),
}  # fmt: skip


# --- the month's conversations ---------------------------------------------------------------------

# fmt: off
STORIES = (
    # The one nobody has decided on yet: a return of something never bought here.
    Story("olivia-tyres", "olivia", "email", "Returning four snow tyres", (
        Write(D(2, "20:14"),
              "Hello,\n\nI'd like to return four snow tyres (205/55 R16). They were never fitted and are still "
              "in their wrapping. I'm afraid I no longer have the receipt, but I'm sure they came from you. "
              "Could you tell me how to send them back and how I get my money?\n\nThanks,\nOlivia Bennett"),
        Note(D(1, "08:47"), "sam",
             "No orders under this address, and as far as I know we have never sold tyres. Whoever picks this "
             "up: your call. A return without a receipt is an action like any other, within your authority."),
    )),
    Story("siobhan-strap", "siobhan", "email", "Strap tore on the Fjord 30 L daypack", (
        Write(D(27, "10:02"),
              "Hi there,\n\nThe shoulder strap on my Fjord 30 L daypack tore on my very first hike "
              "(order NS-20114). I've only had it a week. What can you do?\n\nSiobhan"),
        Change(D(27, "11:20"), "amelie", assignee="amelie", tags=("defect",)),
        Reply(D(27, "11:28"), "amelie",
              "Hi Siobhan,\n\nI'm sorry to hear that, that seam should never give way. Could you tell me exactly "
              "where it tore: at the top, where the strap joins the pack, or at the buckle?\n\n"
              "Best regards,\nAmélie"),
        Change(D(27, "11:29"), "amelie", status=PENDING),
        Write(D(26, "18:20"),
              "At the top, where it's sewn to the pack. The stitching just came undone along about 5 cm."),
        Act(D(25, "09:05"), "amelie", REFUND, 8900, "defective", order="NS-20114",
            note="Stitching failed where the strap joins the pack; she keeps the pack"),
        Reply(D(25, "09:09"), "amelie",
              "Thank you, Siobhan. That's a stitching fault, so I've refunded the full €89.00 to your card; "
              "you'll see it within 3-5 working days. No need to send the pack back.\n\nAmélie"),
        Change(D(25, "09:10"), "amelie", status=RESOLVED),
    )),
    Story("siobhan-belfast", "siobhan", "web", "Shipping to Northern Ireland", (
        Write(D(4, "13:00"),
              "Hi, do you ship to Northern Ireland, and is it in euros or pounds? My sister in Belfast wants "
              "to order. Siobhan"),
        Reply(D(4, "14:30"), "sam",
              "Hi Siobhan,\n\nWe do! Orders to Northern Ireland are charged in pounds and shipped duties paid, "
              "usually in 3-4 working days.\n\nKind regards,\nSam"),
        Change(D(4, "14:31"), "sam", status=RESOLVED),
    )),
    Story("james-insoles", "james", "web", "Insoles in the Hærvej boots", (
        Write(D(19, "09:50"),
              "Hello, I've just ordered the Hærvej walking boots. Will they take my orthotic insoles? "
              "They're fairly thick. James"),
        Reply(D(19, "11:10"), "sam",
              "Hi James,\n\nYes: take out the standard insole and yours should fit, the toe box is roomy. "
              "If they feel tight, exchanges are free.\n\nSam"),
        Change(D(19, "11:11"), "sam", status=RESOLVED),
    )),
    # Above authority because it is in pounds: waiting for a supervisor, and the customer asks again.
    Story("james-boots", "james", "email", "Sole coming off my Hærvej boots", (
        Write(D(2, "07:55"),
              "Hello,\n\nI bought the Hærvej walking boots from you three weeks ago (order NS-20391) and the sole "
              "of the left boot is already coming away at the toe. I've walked maybe 40 miles in them. I'd like "
              "a refund please, not a replacement.\n\nJames Whitaker"),
        Change(D(2, "09:20"), "mads", assignee="mads", tags=("defect",)),
        Act(D(2, "09:26"), "mads", REFUND, 14900, "defective", order="NS-20391",
            note="Sole came away after three weeks; he prefers a refund"),
        Reply(D(2, "09:31"), "mads",
              "Hi James,\n\nThanks for letting us know, and sorry about the boots: a sole should never come off "
              "that soon. I've put through a full refund of £149.00. As it's in pounds, a colleague approves it, "
              "normally the same day; I'll confirm as soon as it's done.\n\nBest wishes,\nMads"),
        Write(H(5), "Hi Mads, any news on the refund? Nothing has come through yet."),
    )),
    Story("priya-size", "priya", "web", "Does the Skagen down jacket run small?", (
        Write(D(30, "19:30"),
              "Hi, I'm usually a UK 12. Would that be a medium in the Skagen down jacket, or does it run small? "
              "I'd like to wear a fleece under it. Thanks, Priya"),
        Reply(D(29, "09:15"), "amelie",
              "Hi Priya,\n\nA UK 12 is a medium in the Skagen. It's cut with room for a mid-layer, so a medium "
              "will fit over a fleece. If it doesn't, exchanges are free within 30 days.\n\n"
              "Best regards,\nAmélie"),
        Change(D(29, "09:16"), "amelie", status=RESOLVED),
    )),
    Story("priya-customs", "priya", "email", "Import charges on my order NS-20205", (
        Write(D(20, "13:15"),
              "Hello,\n\nThe courier wants £38.40 in import charges before they'll deliver my Skagen down "
              "jacket. Your website says prices include all duties for UK orders. I've already spent a week "
              "going back and forth with the courier. Can you help?\n\nPriya Shah"),
        Change(D(20, "13:40"), "sam", assignee="sam", tags=("delivery",)),
        Reply(D(20, "14:02"), "sam",
              "Dear Priya,\n\nYou're right: UK orders are shipped duties paid, so nobody should ask you for "
              "anything. I've called the courier and they found the mistake on their side; the charge is "
              "cancelled and the parcel will be released today or tomorrow. Please don't pay anything in the "
              "meantime.\n\nKind regards,\nSam"),
        Write(D(19, "10:40"),
              "The jacket arrived this morning and nobody asked me for a penny. Thank you Sam, you sorted out "
              "in a day what I'd been chasing for a week!"),
        Hero(D(19, "10:41"), "sam"),
        Reply(D(19, "11:05"), "sam", "That's great to hear, Priya. Enjoy the jacket!\n\nSam"),
        Change(D(19, "11:06"), "sam", status=RESOLVED),
    )),
    Story("daniel-pole", "daniel", "email", "Broken tent pole segment", (
        Write(D(25, "08:05"),
              "Hi,\n\nOne of the pole segments of my Lyngen 2-person tent snapped in the wind last weekend. "
              "The rest of the tent is fine. Can I buy just the one segment rather than a whole pole set?\n\n"
              "Cheers,\nDaniel"),
        Change(D(25, "09:50"), "amelie", assignee="amelie"),
        Act(D(25, "09:58"), "amelie", RESHIP, 0, "defective", order="NS-20122",
            items=({"name": "Lyngen pole segment", "quantity": 1},), note="Spare segment, free of charge"),
        Reply(D(25, "10:12"), "amelie",
              "Hi Daniel,\n\nNo need to buy anything: a pole shouldn't snap after a month. A replacement "
              "segment is on its way, free of charge, and should be with you in 2-3 days. The repair sleeve in "
              "the tent bag will get you through a trip in the meantime.\n\nBest regards,\nAmélie"),
        Change(D(25, "10:13"), "amelie", status=RESOLVED),
    )),
    Story("daniel-giftcard", "daniel", "web", "Gift card balance", (
        Write(D(9, "12:40"),
              "Hello, could you tell me how much is left on gift card 4410-2291? I used part of it on my last "
              "order. Daniel"),
        Reply(D(9, "14:05"), "amelie",
              "Hi Daniel,\n\nThere's €40.00 left on that gift card. Enter the number at checkout and it's "
              "deducted automatically.\n\nAmélie"),
        Change(D(9, "14:06"), "amelie", status=RESOLVED),
    )),
    Story("emily-old-address", "emily", "email", "Parcel sent to my old address", (
        Write(D(21, "16:48"),
              "Hi,\n\nMy order NS-20288 was delivered to my old flat in Galway. I changed my address in my "
              "account before ordering, so I don't understand how this happened, and the new tenants say they "
              "haven't seen it. What now?\n\nEmily Clarke"),
        Change(D(21, "17:02"), "amelie", assignee="amelie", tags=("delivery",)),
        Note(D(21, "17:10"), "amelie",
             "The order was placed with the old address still saved as default; the change came in an hour "
             "later. Sending again by express, the carrier collects the first parcel."),
        Act(D(21, "17:14"), "amelie", RESHIP, 11800, "other", order="NS-20288", details={"expedited": True},
            note="Envoyé à l'ancienne adresse, renvoi en express"),
        Reply(D(21, "17:20"), "amelie",
              "Hi Emily,\n\nI'm so sorry about that. Your two merino base layers are on their way again, by "
              "express to your new address; you'll have them within two days. If the first parcel turns up, "
              "just give it back to the carrier, there's nothing to pay.\n\nBest regards,\nAmélie"),
        Change(D(21, "17:21"), "amelie", status=RESOLVED),
    )),
    Story("emily-new-address", "emily", "web", "Please update my delivery address", (
        Write(H(3),
              "Hi, I'm moving again at the end of the month (sorry!). Could you make sure anything I order from "
              "now goes to 14 Quay Street, Galway H91 X2T3, and delete the old address from my account? "
              "Thanks, Emily"),
    )),
    Story("hannah-size", "hannah", "web", "Snowsuit size for a 4-year-old", (
        Write(D(14, "20:40"), "Hi, what size snowsuit would you recommend for a 4-year-old who is 104 cm tall? Hannah"),
        Reply(D(13, "09:20"), "amelie",
              "Hi Hannah,\n\nI'd go for 110: it leaves room for warm layers underneath, and he'll get two winters "
              "out of it.\n\nAmélie"),
        Change(D(13, "09:21"), "amelie", status=RESOLVED),
    )),
    Story("hannah-zip", "hannah", "email", "Zip broken on kids' snowsuit", (
        Write(D(6, "20:22"),
              "Hello,\n\nThe zip on my son's snowsuit (size 110) broke the second time he wore it. The slider "
              "came off completely and now he can't wear it at all. We're going skiing in two weeks. Can it be "
              "repaired or exchanged?\n\nHannah Byrne"),
        Change(D(5, "09:35"), "amelie", assignee="amelie", tags=("defect",)),
        Reply(D(5, "09:40"), "amelie",
              "Hi Hannah,\n\nSorry to hear that, with a ski trip coming up! Are the teeth of the zip damaged, or "
              "did only the slider come off? If it's just the slider we can send a new one today; otherwise I'll "
              "exchange the whole suit.\n\nAmélie"),
        Change(D(5, "09:41"), "amelie", status=PENDING),
    )),
    Story("tom-proofing", "tom", "email", "Re-proofing the Vejle jacket", (
        Write(D(18, "12:00"),
              "Hi,\n\nWater has stopped beading on my Vejle rain jacket after a few washes. What do you "
              "recommend for re-proofing it, and can it go in the tumble dryer?\n\nTom"),
        Reply(D(18, "15:20"), "sam",
              "Hi Tom,\n\nWash it with a technical wash (no fabric softener), then use a wash-in or spray-on "
              "proofer. And yes: 20 minutes in the dryer on low heat reactivates the coating, which usually "
              "brings the beading right back.\n\nKind regards,\nSam"),
        Change(D(18, "15:21"), "sam", status=RESOLVED),
    )),
    Story("tom-return", "tom", "web", "Return label for a fleece", (
        Write(D(8, "18:45"),
              "Hello, I'd like to return the fleece I bought last week as a present, wrong size. How do I get "
              "a return label? Tom Fletcher"),
        Reply(D(7, "09:05"), "mads",
              "Hi Tom,\n\nYou'll find a prepaid return label under Orders in your account: print it and drop the "
              "parcel at any post office. The refund comes through as soon as it's back with us, usually within "
              "a week.\n\nBest regards,\nMads"),
        Change(D(7, "09:06"), "mads", status=RESOLVED),
    )),
    # France
    Story("camille-late", "camille", "email", "Commande NS-20301 toujours pas arrivée", (
        Write(D(17, "09:12"),
              "Bonjour,\n\nJ'ai commandé une écharpe en laine il y a plus de deux semaines (commande NS-20301) "
              "et je n'ai toujours rien reçu. Le suivi n'a pas bougé depuis six jours. C'était pour un "
              "anniversaire, qui est passé…\n\nCordialement,\nCamille Laurent"),
        Change(D(17, "09:40"), "amelie", assignee="amelie", tags=("late-delivery",)),
        Act(D(17, "09:52"), "amelie", CREDIT, 1500, "late_delivery", order="NS-20301",
            note="Colis bloqué au centre de tri, anniversaire manqué"),
        Reply(D(17, "10:05"), "amelie",
              "Bonjour Camille,\n\nToutes mes excuses : votre colis est resté bloqué au centre de tri de Lyon. "
              "Le transporteur l'a remis en circulation ce matin, vous devriez le recevoir d'ici deux jours. "
              "Pour le désagrément, je vous ai crédité un avoir de 15 € sur votre compte.\n\n"
              "Belle journée,\nAmélie"),
        Change(D(17, "10:06"), "amelie", status=RESOLVED),
        Write(D(15, "19:30"),
              "Reçue aujourd'hui, elle est magnifique. Merci Amélie pour le geste et pour votre gentillesse !"),
        Hero(D(15, "19:31"), "amelie"),
        Reply(D(14, "09:02"), "amelie",
              "Avec plaisir, Camille, et joyeux anniversaire avec un peu de retard à la personne qui l'a reçue !"),
        Change(D(14, "09:03"), "amelie", status=RESOLVED),
    )),
    Story("camille-credit", "camille", "web", "Utiliser mon avoir", (
        Write(D(6, "11:00"), "Bonjour, puis-je utiliser mon avoir de 15 € sur un article soldé ? Camille"),
        Reply(D(6, "11:40"), "amelie",
              "Bonjour Camille,\n\nOui, votre avoir s'applique à tous les articles, soldes compris ; il vous sera "
              "proposé automatiquement au paiement.\n\nAmélie"),
        Change(D(6, "11:41"), "amelie", status=RESOLVED),
    )),
    Story("jean-hem", "jean", "web", "Retouche gratuite ?", (
        Write(D(26, "17:02"),
              "Bonjour, le pantalon chino acheté hier est trop long d'environ 4 cm. Proposez-vous des "
              "retouches ? Merci, Jean Dupont"),
        Change(D(25, "09:20"), "amelie", assignee="amelie"),
        Act(D(25, "09:24"), "amelie", SERVICE, 1500, "other", order="NS-20262",
            details={"description": "Ourlet de 4 cm"}, note="Retouche offerte"),
        Reply(D(25, "09:30"), "amelie",
              "Bonjour Jean,\n\nOui, et elle est offerte. Renvoyez-nous le pantalon avec l'étiquette de retour "
              "en indiquant la longueur souhaitée : vous le recevrez retouché sous une semaine.\n\n"
              "Bien cordialement,\nAmélie"),
        Change(D(25, "09:31"), "amelie", status=RESOLVED),
    )),
    Story("jean-chino", "jean", "email", "Le chino en 44 ?", (
        Write(D(12, "18:20"),
              "Bonjour,\n\nLe chino me plaît beaucoup (une fois retouché !). L'avez-vous aussi en 44, en bleu "
              "marine ?\n\nJean"),
        Reply(D(11, "09:30"), "amelie",
              "Bonjour Jean,\n\nOui, le bleu marine est disponible en 44, et l'ourlet est toujours offert si "
              "besoin.\n\nAmélie"),
        Change(D(11, "09:31"), "amelie", status=RESOLVED),
    )),
    # Above authority, declined: the supervisor says no to 450 €, and the agent finds what she can give.
    Story("elodie-leak", "elodie", "email", "Veste de pluie qui prend l'eau", (
        Write(D(24, "08:30"),
              "Bonjour,\n\nJ'ai acheté la veste de pluie Vejle pour faire le GR20. Dès le deuxième jour, elle a "
              "pris l'eau aux coutures des épaules et j'ai fini la semaine trempée. Pour une veste à 189 €, "
              "c'est inadmissible.\n\nÉlodie Martin"),
        Change(D(24, "09:55"), "amelie", assignee="amelie", tags=("defect",)),
        Act(D(24, "10:05"), "amelie", REFUND, 18900, "defective", order="NS-20170",
            note="Coutures d'épaule non étanches"),
        Reply(D(24, "10:10"), "amelie",
              "Bonjour Élodie,\n\nJe suis vraiment désolée que votre GR20 se soit passé ainsi. Une veste Vejle ne "
              "doit pas prendre l'eau aux coutures : je vous ai remboursé les 189 € sur votre carte, et vous "
              "pouvez garder la veste.\n\nBien à vous,\nAmélie"),
        Change(D(24, "10:11"), "amelie", status=RESOLVED),
        Write(D(23, "21:15"),
              "Le remboursement, c'est la moindre des choses. Mais ma semaine de vacances est gâchée. J'attends "
              "un vrai dédommagement : 450 €, sinon je laisse un avis sur tous les sites possibles."),
        Act(D(22, "09:20"), "amelie", GOODWILL, 45000, "service_failure",
            note="La cliente demande 450 € pour ses vacances gâchées"),
        Note(D(22, "09:22"), "amelie",
             "Sam, I've passed her request on as it stands. I'd rather offer a voucher, but it's your call."),
        Decide(D(22, "11:05"), "sam", approve=False,
               note="We refunded the jacket in full; €450 on top is out of proportion. Offer her a €50 voucher "
                    "for her next trip."),
        Act(D(22, "11:20"), "amelie", CODE, 5000, "service_failure", note="Geste après refus de la demande de 450 €"),
        Reply(D(22, "11:25"), "amelie",
              "Bonjour Élodie,\n\nJe comprends votre déception. Nous ne pouvons pas dédommager des vacances, mais "
              "en plus du remboursement complet, je vous offre un bon de 50 € pour votre prochaine aventure ; "
              "vous le trouverez dans votre compte.\n\nBien à vous,\nAmélie"),
        Write(D(21, "08:10"),
              "D'accord, j'accepte. Et merci à Amélie pour sa patience, j'étais vraiment énervée."),
        Hero(D(21, "08:40"), "amelie", recorded_by="sam"),
        Change(D(21, "08:45"), "amelie", status=RESOLVED),
    )),
    # Resolved, then reopened: the right sleeping bag never left.
    Story("nicolas-bag", "nicolas", "email", "Mauvais sac de couchage", (
        Write(D(13, "08:41"),
              "Bonjour,\n\nJ'ai commandé le sac de couchage Dovre -15 °C (commande NS-20350) et j'ai reçu le "
              "modèle -5 °C. Je pars en bivouac dans le Vercors dans dix jours, il me faut le bon modèle.\n\n"
              "Nicolas Bernard"),
        Change(D(13, "09:02"), "amelie", assignee="amelie", tags=("wrong-item",)),
        Act(D(13, "09:10"), "amelie", RESHIP, 0, "wrong_item", order="NS-20350",
            items=({"name": "Sac de couchage Dovre -15 °C", "quantity": 1},), note="Erreur de préparation"),
        Reply(D(13, "09:14"), "amelie",
              "Bonjour Nicolas,\n\nToutes nos excuses pour cette erreur de préparation. Le bon modèle part "
              "aujourd'hui en express ; une étiquette pour nous renvoyer le -5 °C est jointe au colis.\n\n"
              "Bon bivouac !\nAmélie"),
        Change(D(13, "09:15"), "amelie", status=RESOLVED),
        Write(D(1, "18:05"),
              "Bonjour Amélie,\n\nToujours rien reçu, et je pars après-demain. Le suivi indique « en "
              "préparation » depuis douze jours. Que se passe-t-il ?"),
    )),
    # A repeat problem: the second lost parcel in a month; a request above authority, waiting for Sam.
    Story("sophie-first-parcel", "sophie", "web", "Colis perdu", (
        Write(D(29, "14:20"),
              "Bonjour, le suivi de ma commande NS-20112 indique « livré » mais je n'ai rien reçu, et mes voisins "
              "non plus. Pouvez-vous m'aider ? Sophie Petit"),
        Change(D(29, "15:00"), "amelie", assignee="amelie", tags=("lost-parcel",)),
        Act(D(29, "15:06"), "amelie", RESHIP, 6400, "lost_in_transit", order="NS-20112"),
        Reply(D(29, "15:10"), "amelie",
              "Bonjour Sophie,\n\nJe suis désolée. J'ai ouvert une réclamation auprès du transporteur et je vous "
              "renvoie votre t-shirt dès aujourd'hui, sans attendre leur réponse.\n\nBelle journée,\nAmélie"),
        Change(D(29, "15:11"), "amelie", status=RESOLVED),
    )),
    Story("sophie-second-parcel", "sophie", "email", "Encore un colis perdu", (
        Write(D(9, "10:15"),
              "Bonjour,\n\nC'est la deuxième fois en un mois : ma commande NS-20402 (doudoune et chaussettes) "
              "est bloquée « en transit » depuis dix jours. Je suis cliente chez vous depuis 2019 et je commence "
              "à me décourager.\n\nSophie Petit"),
        Change(D(9, "10:40"), "amelie", assignee="amelie", priority=Priority.high, tags=("lost-parcel",)),
        Reply(D(9, "11:00"), "amelie",
              "Bonjour Sophie,\n\nJe comprends tout à fait, et je suis désolée que cela se reproduise. J'ouvre "
              "une enquête auprès du transporteur dès maintenant ; ils ont cinq jours ouvrés pour répondre, et "
              "je vous tiens au courant.\n\nAmélie"),
        Change(D(9, "11:01"), "amelie", status=PENDING),
        Note(D(1, "09:30"), "amelie",
             "Carrier confirms the parcel is lost. Second lost parcel in a month for a customer since 2019: "
             "asking Sam for the whole order as store credit."),
        Act(D(1, "09:40"), "amelie", CREDIT, 37300, "lost_in_transit", order="NS-20402",
            note="Deux colis perdus en un mois, cliente fidèle depuis 2019"),
        Reply(D(1, "09:45"), "amelie",
              "Bonjour Sophie,\n\nLe transporteur confirme la perte de votre colis. Je vous propose le montant "
              "de la commande, 373 €, en avoir sur votre compte (ou un remboursement, si vous préférez) ; Sam, "
              "mon responsable, le valide aujourd'hui.\n\nAmélie"),
    )),
    Story("lucas-gloves", "lucas", "web", "Gants en cuir taille 8", (
        Write(D(5, "16:10"),
              "Bonjour, les gants en cuir pour homme en taille 8 vont-ils revenir en stock bientôt ? Lucas"),
        Reply(D(4, "10:00"), "amelie",
              "Bonjour Lucas,\n\nOui, un réassort est attendu la semaine prochaine. Je garde votre demande de "
              "côté et je vous écris dès qu'ils sont en ligne.\n\nAmélie"),
        Change(D(4, "10:01"), "amelie", assignee="amelie", status=SNOOZED, snooze_days=4),
    )),
    Story("chloe-sweater", "chloe", "email", "Échange pull M contre L", (
        Write(D(27, "20:45"),
              "Bonsoir,\n\nLe pull en laine taille M est un peu juste aux épaules. Est-il possible de l'échanger "
              "contre un L ?\n\nMerci,\nChloé Roux"),
        Change(D(26, "09:10"), "amelie", assignee="amelie", tags=("exchange",)),
        Act(D(26, "09:15"), "amelie", RESHIP, 0, "other", order="NS-20218",
            items=({"name": "Pull en laine, femme L", "quantity": 1},), note="Échange M → L"),
        Reply(D(26, "09:20"), "amelie",
              "Bonjour Chloé,\n\nBien sûr ! Le L part aujourd'hui ; renvoyez-nous le M avec l'étiquette jointe, "
              "quand vous voulez.\n\nBelle journée,\nAmélie"),
        Change(D(26, "09:21"), "amelie", status=RESOLVED),
        Write(D(24, "12:30"), "Reçu le L, il est parfait. Un grand merci à Amélie, toujours aussi rapide et aimable !"),
        Hero(D(24, "12:31"), "amelie"),
        Reply(D(24, "14:00"), "amelie", "Merci beaucoup, Chloé, ça me fait très plaisir. Bon hiver au chaud !"),
        Change(D(24, "14:01"), "amelie", status=RESOLVED),
    )),
    Story("antoine-club", "antoine", "web", "Devis pour un club de randonnée", (
        Write(D(2, "10:30"),
              "Bonjour, je préside un club de randonnée à Grenoble. Nous voudrions commander 12 vestes de pluie "
              "Vejle (tailles variées) avec notre logo. Faites-vous des tarifs de groupe, et le marquage est-il "
              "possible ? Antoine Girard"),
        Change(D(2, "11:15"), "sam", assignee="sam"),
    )),
    Story("mathilde-paris", "mathilde", "web", "Un magasin à Paris ?", (
        Write(D(1, "13:25"),
              "Bonjour, avez-vous un magasin à Paris où essayer les chaussures de randonnée avant de commander ? "
              "Mathilde Fontaine"),
    )),
    # In the website chat, signed in on the shop's site: the chat joins her timeline.
    Story("mathilde-chat", "mathilde", "chat", "", (
        Write(D(1, "15:02"), "Bonjour ! Les chaussures Hærvej existent-elles en demi-pointure, en 38,5 ?"),
        Reply(D(1, "15:03"), "amelie",
              "Bonjour Mathilde ! Non, seulement en pointures entières. En 38,5, la plupart des clientes "
              "prennent le 39 avec une semelle fine."),
        Write(D(1, "15:05"), "Parfait, merci beaucoup !"),
        Reply(D(1, "15:05"), "amelie", "Avec plaisir, bonne journée !"),
        Change(D(1, "15:06"), "amelie", status=RESOLVED),
    )),
    # Denmark
    Story("freja-size", "freja", "email", "Forkert størrelse", (
        Write(D(22, "07:50"),
              "Hej,\n\nJeg har fået vinterjakken i small, men den er for lille over skuldrene. Kan jeg bytte den "
              "til en medium?\n\nMvh. Freja Nielsen"),
        Change(D(22, "09:05"), "mads", assignee="mads", priority=Priority.high, tags=("exchange",)),
        Note(D(22, "09:12"), "mads", "Medium is in stock in Aarhus; I will send it today."),
        Act(D(22, "09:20"), "mads", RESHIP, 0, "other", order="NS-20310",
            items=({"name": "Vinterjakke, medium", "quantity": 1},), note="Ombytning small → medium"),
        Reply(D(22, "09:30"), "mads",
              "Hej Freja,\n\nSelvfølgelig. Medium-jakken er sendt i dag, og der ligger en returlabel til "
              "small-jakken i pakken.\n\nGod dag,\nMads"),
        Change(D(22, "09:31"), "mads", status=RESOLVED),
        Write(D(19, "18:30"),
              "Hej igen,\n\nMedium passer heller ikke, ærmerne er alt for korte. Jeg tror ikke, jakken er noget "
              "for mig. Kan jeg få pengene tilbage i stedet?\n\nFreja"),
        Act(D(18, "09:10"), "mads", REFUND, 149900, "changed_mind", order="NS-20310",
            note="To størrelser prøvet, ingen passer"),
        Reply(D(18, "09:15"), "mads",
              "Hej Freja,\n\nØv, det er ærgerligt. Jeg har refunderet de 1.499 kr. til dit kort; send bare begge "
              "jakker retur med labelen, når det passer dig.\n\nMvh.\nMads"),
        Change(D(18, "09:16"), "mads", status=RESOLVED, priority=Priority.normal),
    )),
    Story("freja-newsletter", "freja", "web", "Afmelding af nyhedsbrev", (
        Write(D(5, "08:10"), "Hej, jeg får jeres nyhedsbrev to gange om ugen. Kan I afmelde mig? Freja"),
        Reply(D(5, "09:00"), "mads", "Hej Freja,\n\nDu er nu afmeldt. Undskyld for de mange mails!\n\nMads"),
        Change(D(5, "09:01"), "mads", status=RESOLVED),
    )),
    Story("lars-boots", "lars", "email", "Indgåning af vandrestøvler", (
        Write(D(16, "09:00"),
              "Hej,\n\nJeg har lige fået Hærvej-støvlerne. Hvordan går jeg dem bedst til, før jeg skal på "
              "Kungsleden om to uger?\n\nLars Hansen"),
        Reply(D(16, "10:20"), "mads",
              "Hej Lars,\n\nGå med dem hjemme og på korte ture de første dage, gerne med de sokker, du skal bruge "
              "på turen, og smør læderet med voks, så holder de tæt. Efter 30-40 km er de klar.\n\nGod tur!\nMads"),
        Change(D(16, "10:21"), "mads", status=RESOLVED),
        Write(D(15, "20:10"), "Tusind tak til Mads for den hurtige hjælp i går! Støvlerne føles allerede bedre."),
        Hero(D(15, "20:11"), "mads"),
        Reply(D(14, "08:30"), "mads", "Selv tak, Lars! God tur på Kungsleden."),
        Change(D(14, "08:31"), "mads", status=RESOLVED),
    )),
    Story("mette-which-tent", "mette", "web", "Telt til fjeldtur", (
        Write(D(28, "10:20"),
              "Hej, vi er tre, der skal på fjeldtur i Norge. Hvilket af jeres telte kan klare blæst? Mette"),
        Reply(D(28, "13:40"), "mads",
              "Hej Mette,\n\nTil tre personer og blæst vil jeg anbefale Lyngen 3-personers telt: lav profil, fire "
              "bardunpunkter pr. side og god plads til oppakningen. Det vejer 3,1 kg.\n\nMvh.\nMads"),
        Change(D(28, "13:41"), "mads", status=RESOLVED),
    )),
    # Above authority, approved: a full refund of a tent, then the customer's thanks.
    Story("mette-tent", "mette", "email", "Knækket teltstang", (
        Write(D(12, "19:40"),
              "Hej,\n\nDen ene stang på vores Lyngen-telt knækkede allerede første nat, i helt almindelig vind. "
              "Vi måtte pakke sammen klokken to om natten. Jeg vil gerne have pengene tilbage for teltet.\n\n"
              "Mette Jensen"),
        Change(D(11, "08:50"), "mads", assignee="mads", tags=("defect",)),
        Act(D(11, "08:58"), "mads", REFUND, 349900, "defective", order="NS-20190",
            note="Stang knækket første nat; billederne viser en materialefejl"),
        Reply(D(11, "09:05"), "mads",
              "Hej Mette,\n\nDet lyder som en rigtig dårlig nat, undskyld. Jeg har sat en fuld refusion af teltet "
              "i gang; beløbet er over det, jeg selv kan godkende, så min kollega Sam ser på det i løbet af "
              "formiddagen.\n\nMvh.\nMads"),
        Decide(D(11, "10:30"), "sam", approve=True, note="A clear material fault: full refund approved."),
        Reply(D(11, "10:45"), "mads",
              "Hej igen,\n\nRefusionen på 3.499 kr. er godkendt og på vej til dit kort. Du behøver ikke sende "
              "teltet retur.\n\nMads"),
        Change(D(11, "10:46"), "mads", status=RESOLVED),
        Write(D(10, "17:05"),
              "Pengene er kommet. Tak, Mads, fordi du tog det så pænt. Vi handler gerne hos jer igen."),
        Hero(D(10, "17:06"), "mads"),
        Change(D(9, "08:30"), "mads", status=RESOLVED),
    )),
    # The urgent complaint, still waiting.
    Story("soren-charged", "soren", "email", "Trukket tre gange!", (
        Write(D(3, "22:10"),
              "Hej,\n\nJeg er blevet trukket TRE gange for ordre NS-20470 (499 kr. hver gang). Jeg har kun "
              "bestilt én fleecetrøje. Få det rettet med det samme.\n\nSøren Pedersen"),
        Change(D(2, "08:35"), "mads", assignee="mads", priority=Priority.urgent, tags=("billing",)),
        Note(D(2, "08:40"), "mads",
             "Payment provider says two of the three charges are reservations that drop off within three days. "
             "Asked them to release them now."),
        Reply(D(2, "08:50"), "mads",
              "Hej Søren,\n\nUndskyld, det er vores fejl. Kun ét af beløbene er et rigtigt træk; de to andre er "
              "reservationer, som jeg har bedt vores betalingsudbyder om at frigive med det samme. Du hører fra "
              "mig, så snart de er væk.\n\nMvh.\nMads"),
        Write(H(2), "Pengene er STADIG trukket, og jeg skal betale husleje i morgen. Det er simpelthen ikke i orden."),
    )),
    # A repeat problem: the replacement leaks too.
    Story("thomas-leak", "thomas", "email", "Regnjakken er utæt", (
        Write(D(29, "08:15"),
              "Hej,\n\nMin Vejle-regnjakke er utæt ved skuldersømmene efter tre ture. Den er kun en måned "
              "gammel.\n\nThomas Møller"),
        Change(D(29, "09:40"), "mads", assignee="mads", tags=("defect",)),
        Act(D(29, "09:50"), "mads", RESHIP, 129900, "defective", order="NS-20144",
            items=({"name": "Vejle regnjakke, herre M", "quantity": 1},), note="Ny jakke, sømtapen slipper"),
        Reply(D(29, "10:00"), "mads",
              "Hej Thomas,\n\nDet må en regnjakke ikke. Jeg har sendt dig en ny i dag; den gamle kan du sende "
              "retur med labelen i pakken.\n\nMvh.\nMads"),
        Change(D(29, "10:01"), "mads", status=RESOLVED),
    )),
    Story("thomas-leak-again", "thomas", "web", "Den nye jakke er også utæt", (
        Write(H(5),
              "Hej igen. Den nye Vejle-jakke, I sendte, er nu også utæt ved skuldrene. Det er anden gang. Jeg "
              "vil gerne have pengene tilbage. Thomas Møller"),
        Change(H(4), "sam", assignee="mads", tags=("defect", "repeat")),
    )),
    Story("ida-sunday", "ida", "web", "Åbningstider i Aarhus", (
        Write(D(11, "12:10"), "Hej, har jeres butik i Aarhus åbent om søndagen? Ida"),
        Reply(D(11, "12:45"), "mads", "Hej Ida,\n\nJa, søndag har vi åbent kl. 10-16. Velkommen!\n\nMads"),
        Change(D(11, "12:46"), "mads", status=RESOLVED),
    )),
    Story("ida-chat", "ida", "chat", "", (
        Write(H(5), "Hej! Kan jeg hente en ordre i butikken i Aarhus i stedet for at få den sendt?"),
        Reply(H(4.98), "mads", "Hej Ida! Ja, vælg \"Afhentning i Aarhus\" ved kassen, så er den klar næste dag."),
        Write(H(4.95), "Super, tak!"),
    )),
    Story("ida-giftcard", "ida", "web", "Gavekort", (
        Write(D(3, "11:15"), "Hej igen, kan man købe gavekort online, eller kun i butikken? Ida"),
        Reply(D(3, "11:50"), "mads",
              "Hej Ida,\n\nBegge dele: online sender vi det som e-mail med det samme, i butikken får du et kort i "
              "en fin kuvert.\n\nMads"),
        Change(D(3, "11:51"), "mads", status=RESOLVED),
    )),
    Story("rasmus-zip", "rasmus", "email", "Lynlåsen er gået i stykker", (
        Write(D(7, "21:00"),
              "Hej,\n\nLynlåsen i min Dovre-sovepose er gået i stykker. Jeg købte den sidste år. Er det dækket af "
              "garantien?\n\nRasmus Kristensen"),
        Change(D(6, "09:05"), "mads", assignee="mads"),
        Reply(D(6, "09:10"), "mads",
              "Hej Rasmus,\n\nJa, der er to års garanti på lynlåse, og jeg kan se din ordre fra sidste år. Er det "
              "skyderen eller selve tænderne, der er gået? Så ved jeg, om vi reparerer eller bytter.\n\n"
              "Mvh.\nMads"),
        Change(D(6, "09:11"), "mads", status=PENDING),
    )),
    Story("anne-late", "anne", "email", "Hvor bliver min pakke?", (
        Write(D(20, "11:30"),
              "Hej,\n\nMin ordre NS-20233 skulle være kommet for tre dage siden, men den er her ikke endnu. Kan I "
              "se, hvor den er?\n\nAnne Poulsen"),
        Change(D(20, "12:00"), "mads", assignee="mads", tags=("late-delivery",)),
        Act(D(20, "12:05"), "mads", CODE, 15000, "late_delivery", note="Forsinket levering"),
        Reply(D(20, "12:10"), "mads",
              "Hej Anne,\n\nPakken har stået stille hos fragtfirmaet, men nu er den på vej og kommer i morgen. "
              "Som undskyldning har du fået en rabatkode på 150 kr. til dit næste køb; du finder den på din "
              "konto.\n\nMvh.\nMads"),
        Change(D(20, "12:11"), "mads", status=RESOLVED),
    )),
    Story("anne-code", "anne", "web", "Rabatkode på udsalg", (
        Write(D(10, "15:45"), "Hej, gælder rabatkoden også på udsalgsvarer? Anne"),
        Reply(D(10, "16:20"), "mads",
              "Hej Anne,\n\nJa, koden gælder på alt, også udsalg, og den kan bruges én gang inden for et år.\n\n"
              "Mads"),
        Change(D(10, "16:21"), "mads", status=RESOLVED),
    )),
    Story("jonas-cancel", "jonas", "web", "Annuller ordre NS-20480", (
        Write(D(2, "07:30"),
              "Hej, jeg kom til at bestille en pandelampe i går (ordre NS-20480). Kan den annulleres, før den "
              "bliver sendt? Jonas Holm"),
        Reply(D(2, "09:10"), "mads",
              "Hej Jonas,\n\nDen var ikke sendt endnu, så ordren er annulleret, og beløbet frigives på dit kort "
              "inden for et par dage.\n\nMads"),
        Change(D(2, "09:11"), "mads", status=RESOLVED),
    )),
    Story("karen-gloves", "karen", "email", "Sømmen er gået op på handskerne", (
        Write(D(8, "13:20"),
              "Hej,\n\nSømmen på den højre skindhandske er gået op ved tommelfingeren efter to uger. Kan I gøre "
              "noget?\n\nKaren Østergaard"),
        Change(D(8, "14:00"), "mads", assignee="mads", tags=("defect",)),
        Reply(D(8, "14:05"), "mads",
              "Hej Karen,\n\nDet er ikke godt nok. Vil du have nye handsker, eller foretrækker du pengene "
              "tilbage?\n\nMvh.\nMads"),
        Change(D(8, "14:06"), "mads", status=PENDING),
        Write(D(7, "19:00"), "Pengene tilbage, tak. Jeg har fundet et par andre."),
        Act(D(6, "08:45"), "mads", REFUND, 44900, "defective", order="NS-20260"),
        Reply(D(6, "08:50"), "mads",
              "Hej Karen,\n\nDu har fået 449 kr. tilbage på dit kort, og handskerne må du gerne beholde.\n\nMads"),
        Change(D(6, "08:51"), "mads", status=RESOLVED),
    )),
)
# fmt: on


# --- playing the stories ---------------------------------------------------------------------------


def seed_demo(session: Session, *, settings: Settings | None = None) -> dict[str, User]:
    """Create the demo users, mailbox, customers, orders and conversations that are not there yet."""
    settings = settings or Settings()
    now = utcnow()
    with clock_set_to(now - timedelta(days=SET_UP_DAYS_AGO)):
        users = _seed_users(session)
        mailbox = _seed_mailbox(session, admin=users["ada"])
        web = builtin_channel(session, kind=ChannelKind.web)
        chat = _seed_chat(session, settings=settings)
        _seed_authority(session, users)
        session.flush()
    session.commit()

    missing = _missing_stories(session, mailbox=mailbox, web=web, chat=chat)
    playback = _Playback(session, settings=settings, users=users, mailbox=mailbox, web=web, chat=chat, now=now)
    timeline = sorted(
        (moment, n, i) for n, story in enumerate(missing) for i, moment in enumerate(_moments(story, now=now))
    )
    for moment, n, i in timeline:
        with clock_set_to(moment):
            playback.play(missing[n], missing[n].steps[i])
            session.flush()  # stamped now, inside the moment (column defaults read the clock at flush)
    session.commit()
    return users


def _seed_users(session: Session) -> dict[str, User]:
    by_email = {}
    for demo in DEMO_USERS:
        user = session.scalar(select(User).where(User.email == demo.email))
        if user is None:
            user = create_user(
                session, email=demo.email, name=demo.name, role=demo.role,
                password=demo.password, language=demo.language, reason="demo data",
            )  # fmt: skip
        by_email[demo.email] = user
    return {key: by_email[email] for key, email in _AGENTS.items()}


def _seed_mailbox(session: Session, *, admin: User) -> Channel:
    """The shop's support address, receiving through the SMTP listener; the default outbound mailbox
    unless an admin has chosen another."""
    mailbox = session.scalar(select(Channel).where(Channel.key == channel_key(MAILBOX)))
    if mailbox is None:
        # No IMAP or SMTP credentials, so nothing to encrypt with the app secret.
        mailbox = create_email_channel(session, address=MAILBOX, name=MAILBOX_NAME, app_secret="")
    if default_outbound_channel(session) is None:
        set_default_outbound(session, address=MAILBOX, actor=admin)
    return mailbox


def _seed_chat(session: Session, *, settings: Settings) -> Channel:
    """The shop's website chat, ``chat:demo`` (shown on /widget/demo)."""
    chat = session.scalar(select(Channel).where(Channel.key == CHAT_KEY))
    if chat is None:
        chat, _ = create_chat_channel(session, name=CHAT_NAME, slug="demo", app_secret=settings.resolved_secret_key)
    return chat


def _seed_authority(session: Session, users: dict[str, User]) -> None:
    """Agents' authority in the currency they sell in (Amélie euros, Mads kroner)."""
    for key, currency, scale in (("amelie", "EUR", 1), ("mads", "DKK", 7)):
        agent = users[key]
        if session.scalar(select(AuthorityPolicy.id).where(AuthorityPolicy.user_id == agent.id)) is None:
            set_authority(
                session, actor=users["ada"], user=agent, currency=currency,
                per_action=dict.fromkeys((t.value for t in ActionType), 300_00 * scale),
                per_customer_30d=600_00 * scale, daily_budget=1_500_00 * scale,
            )  # fmt: skip


def _first_external_id(story: Story) -> str:
    if story.channel == "email":
        return _email_message_id(story, 1)
    return f"demo-{story.key}"


def _email_message_id(story: Story, n: int) -> str:
    domain = CUSTOMERS[story.customer].email.rpartition("@")[2]
    return f"<demo-{story.key}-{n}@{domain}>"


def _missing_stories(session: Session, *, mailbox: Channel, web: Channel, chat: Channel) -> list[Story]:
    """The stories whose conversation does not exist yet (one query)."""
    wanted = {_first_external_id(story): story for story in STORIES}
    found = set(
        session.scalars(
            select(Message.external_id).where(
                Message.channel_id.in_((mailbox.id, web.id, chat.id)), Message.external_id.in_(list(wanted))
            )
        )
    )
    return [story for external_id, story in wanted.items() if external_id not in found]


def _moments(story: Story, *, now: datetime) -> list[datetime]:
    """When each step happens: in the order written, never in the future."""
    today = now.astimezone(SHOP_TIME).date()
    moments: list[datetime] = []
    for step in story.steps:
        at = step.at
        if at.hours:
            moment = now - timedelta(hours=at.hours)
        else:
            day = today - timedelta(days=at.days)
            moment = datetime.combine(day, time.fromisoformat(at.clock), SHOP_TIME).astimezone(UTC)
        if moments:
            # "Yesterday evening" can be later than "five hours ago" just after midnight.
            moment = max(moment, moments[-1] + timedelta(minutes=1))
        moments.append(min(moment, now - timedelta(seconds=len(story.steps) - len(moments))))
    return moments


@dataclass
class _Conversation:
    """What a story remembers between its steps."""

    id: int
    references: list[str]  # Message-IDs of the thread, oldest first, for the customer's next mail
    last_inbound_id: int
    last_inbound_text: str
    written: int = 1
    last_action_id: int | None = None


class _Playback:
    def __init__(self, session: Session, *, settings: Settings, users: dict[str, User], mailbox: Channel,
                 web: Channel, chat: Channel, now: datetime):  # fmt: skip
        self.session, self.settings, self.users = session, settings, users
        self.mailbox, self.web, self.chat, self.now = mailbox, web, chat, now
        self.conversations: dict[str, _Conversation] = {}
        self.orders = {number: order_id for number, order_id in session.execute(select(Order.number, Order.id))}

    def play(self, story: Story, step: Step) -> None:
        if isinstance(step, Write) and story.channel == "chat":
            self._chat(story, step)
            return
        if isinstance(step, Write):
            if story.key in self.conversations:
                self._write_again(story, step)
            else:
                self._open(story, step)
            return
        state = self.conversations[story.key]
        conversation = get_conversation(self.session, conversation_id=state.id, with_messages=False)
        match step:
            case Reply() if story.channel == "chat":
                # The visitor is in the chat: the reply reaches the widget, which shows it.
                touch_visitor(self.session, visitor_id=self._visitor(story).visitor_id)
                message = add_reply(self.session, conversation=conversation, author=self.users[step.agent],
                                    body=step.body)  # fmt: skip
                record_report(self.session, message=message, status=DeliveryStatus.delivered)
            case Reply():
                message = add_reply(self.session, conversation=conversation, author=self.users[step.agent],
                                    body=step.body)  # fmt: skip
                state.references.append(self._sent_then(message))
            case Note():
                add_reply(self.session, conversation=conversation, author=self.users[step.agent], body=step.body,
                          internal=True)  # fmt: skip
            case Change():
                self._change(conversation, step)
            case Act():
                order_id = self.orders[step.order] if step.order else None
                action = take_action(
                    self.session, conversation=conversation, actor=self.users[step.agent], action_type=step.type,
                    amount=step.amount, currency=CUSTOMERS[story.customer].currency, reason=step.reason,
                    note=step.note, order_id=order_id, items=list(step.items), details=step.details,
                )  # fmt: skip
                state.last_action_id = action.id
            case Decide():
                assert state.last_action_id is not None, f"{story.key}: nothing to decide on"
                action = get_action(self.session, action_id=state.last_action_id)
                decide = approve_action if step.approve else decline_action
                decide(self.session, action=action, actor=self.users[step.agent], note=step.note)
            case Hero():
                recorded_by = self.users[step.recorded_by] if step.recorded_by else None
                record_hero_moment(
                    self.session, conversation=conversation, user=self.users[step.agent],
                    quote=state.last_inbound_text, message_id=state.last_inbound_id,
                    source="manual" if recorded_by else "customer_message", recorded_by=recorded_by,
                )  # fmt: skip

    def _open(self, story: Story, step: Write) -> None:
        customer = CUSTOMERS[story.customer]
        if story.channel == "email":
            message_id = _email_message_id(story, 1)
            result = receive_email(self.session, settings=self.settings, channel=self.mailbox,
                                   raw=_email(customer, story.subject, step.body, message_id, []))  # fmt: skip
            references = [message_id]
        else:
            values = {"name": customer.name, "email": customer.email, "subject": story.subject, "message": step.body}
            result = ingest(
                self.session,
                inbound=InboundMessage(
                    channel=self.web, sender=Sender(email=customer.email, name=customer.name),
                    subject=story.subject, body_text=step.body, external_id=_first_external_id(story),
                    raw=urlencode(values).encode(), raw_content_type="application/x-www-form-urlencoded",
                ),
            )  # fmt: skip
            references = []
        self.session.get_one(Customer, result.customer_id).language = customer.language
        self.session.get_one(Conversation, result.conversation_id).language = customer.language
        self._add_orders(result.customer_id, customer)
        self.conversations[story.key] = _Conversation(result.conversation_id, references, result.message_id, step.body)

    def _chat(self, story: Story, step: Write) -> None:
        """The customer writes in the website chat, signed in on the shop's site (a verified identity)."""
        customer = CUSTOMERS[story.customer]
        visitor = self._visitor(story)
        state = self.conversations.get(story.key)
        n = state.written + 1 if state else 1
        client_id = f"demo-{n}"
        frame = {"type": "message", "client_id": client_id, "body": step.body}
        result = ingest(
            self.session,
            inbound=InboundMessage(
                channel=self.chat, sender=Sender(chat_visitor=visitor.visitor_id, email=customer.email,
                                                 name=customer.name),
                body_text=step.body, external_id=_first_external_id(story) if n == 1 else f"demo-{story.key}-{n}",
                conversation_id=state.id if state else None, raw=json.dumps(frame).encode(),
                raw_content_type="application/json", language=customer.language,
                meta={"client_id": client_id, "chat_visitor": visitor.visitor_id, "verified": True},
            ),
        )  # fmt: skip
        visitor.customer_id, visitor.conversation_id, visitor.last_seen_at = (
            result.customer_id, result.conversation_id, utcnow(),
        )  # fmt: skip
        if state is None:
            self.session.get_one(Conversation, result.conversation_id).language = customer.language
            self.conversations[story.key] = _Conversation(result.conversation_id, [], result.message_id, step.body)
        else:
            state.written = n
            state.last_inbound_id, state.last_inbound_text = result.message_id, step.body

    def _visitor(self, story: Story) -> ChatVisitor:
        visitor_id = f"demo-visitor-{story.key}"
        visitor = self.session.scalar(select(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id))
        if visitor is None:
            customer = CUSTOMERS[story.customer]
            visitor = ChatVisitor(channel_id=self.chat.id, visitor_id=visitor_id, name=customer.name,
                                  verified_email=customer.email, language=customer.language)  # fmt: skip
            self.session.add(visitor)
            self.session.flush()
        return visitor

    def _write_again(self, story: Story, step: Write) -> None:
        """The customer answers our last mail: by email, threaded by its References, as a mail client does."""
        state = self.conversations[story.key]
        if not state.references:
            raise ValueError(f"{story.key}: the customer can only write again once we have answered")
        state.written += 1
        message_id = _email_message_id(story, state.written)
        raw = _email(CUSTOMERS[story.customer], f"Re: {story.subject}", step.body, message_id, state.references)
        result = receive_email(self.session, settings=self.settings, channel=self.mailbox, raw=raw)
        if result.conversation_id != state.id:
            raise ValueError(f"{story.key}: the customer's answer did not join the conversation")
        state.references.append(message_id)
        state.last_inbound_id, state.last_inbound_text = result.message_id, step.body

    def _change(self, conversation: Conversation, step: Change) -> None:
        changes: dict = {}
        if step.status is not None:
            changes["status"] = step.status
        if step.snooze_days is not None:
            changes["snoozed_until"] = self.now + timedelta(days=step.snooze_days)
        if step.assignee is not None:
            changes["assignee_id"] = self.users[step.assignee].id
        if step.priority is not None:
            changes["priority"] = step.priority
        if step.tags is not None:
            changes["tags"] = list(step.tags)
        update_conversation(self.session, conversation=conversation, actor=self.users[step.agent], **changes)

    def _sent_then(self, message: Message) -> str:
        """Record a reply of the past as sent from the demo mailbox (see the module's docstring);
        the Message-ID the customer's next mail refers to."""
        message.channel = self.mailbox  # a contact-form conversation is answered from the default mailbox
        prepare_reply(self.session, message=message)
        message.meta = {k: v for k, v in message.meta.items() if k != "undeliverable"} | {"sender": "email"}
        message.delivery_error = None
        record_attempt(self.session, message_id=message.id)
        assert message.delivery_status is DeliveryStatus.sent and message.external_id
        return message.external_id

    def _add_orders(self, customer_id: int, customer: DemoCustomer) -> None:
        for order in customer.orders:
            if order.number in self.orders:
                continue
            placed_at = datetime.combine(self.now.astimezone(SHOP_TIME).date() - timedelta(days=order.days_ago),
                                         time(12), SHOP_TIME)  # fmt: skip
            row = Order(
                customer_id=customer_id, number=order.number, status=order.status, currency=customer.currency,
                total_amount=sum(quantity * unit for _, _, quantity, unit in order.items),
                items=[{"sku": sku, "name": name, "quantity": quantity, "unit_amount": unit}
                       for sku, name, quantity, unit in order.items],
                placed_at=placed_at,
            )  # fmt: skip
            if order.status in ("shipped", "in_transit", "delivered", "completed", "returned", "lost"):
                # What the shop's carrier said; tracking numbers made from the order number.
                digits = "".join(c for c in order.number if c.isdigit())
                row.carrier, row.tracking_number = "PostNord", f"00370{digits:0>13}"
                if order.status in ("delivered", "completed", "returned"):
                    row.delivered_at = placed_at + timedelta(days=3)
            self.session.add(row)
            self.session.flush()
            self.orders[order.number] = row.id


def _email(customer: DemoCustomer, subject: str, body: str, message_id: str, references: list[str]) -> bytes:
    """The customer's mail as it reaches the SMTP listener."""
    email = EmailMessage()
    email["From"] = formataddr((customer.name, customer.email))
    email["To"] = formataddr((MAILBOX_NAME, MAILBOX))
    email["Subject"] = subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = message_id
    if references:
        email["In-Reply-To"] = references[-1]
        email["References"] = " ".join(references)
    email.set_content(body)
    return email.as_bytes()
