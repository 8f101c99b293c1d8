"""All ORM models. Alembic imports this package to see the whole schema."""

from cape.models.actions import (
    Action,
    ActionStatus,
    ActionType,
    AuditEntry,
    AuthorityPolicy,
    FulfilmentStatus,
    LedgerEntry,
    SpendCounter,
)
from cape.models.base import Base
from cape.models.channels import Channel, ChannelKind, RawSource, RawStatus
from cape.models.chat import ChatVisitor
from cape.models.conversations import (
    Activity,
    AuthorType,
    Conversation,
    ConversationStatus,
    ConversationTag,
    DeliveryStatus,
    Message,
    MessageDirection,
    Priority,
)
from cape.models.customers import Customer, Identity, IdentityKind, Order
from cape.models.email import Attachment, MailboxState
from cape.models.insights import HeroMoment
from cape.models.users import (
    ApiToken,
    Invitation,
    PresenceStatus,
    RateLimitHit,
    Role,
    Team,
    TeamMember,
    User,
    UserSession,
)
from cape.models.workspace import WorkspaceSetting

__all__ = [
    "Action",
    "ActionStatus",
    "ActionType",
    "Activity",
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "AuthorType",
    "AuthorityPolicy",
    "Base",
    "Channel",
    "ChannelKind",
    "ChatVisitor",
    "Conversation",
    "ConversationStatus",
    "ConversationTag",
    "Customer",
    "DeliveryStatus",
    "FulfilmentStatus",
    "HeroMoment",
    "Identity",
    "IdentityKind",
    "Invitation",
    "LedgerEntry",
    "MailboxState",
    "Message",
    "MessageDirection",
    "Order",
    "PresenceStatus",
    "Priority",
    "RateLimitHit",
    "RawSource",
    "RawStatus",
    "Role",
    "SpendCounter",
    "Team",
    "TeamMember",
    "User",
    "UserSession",
    "WorkspaceSetting",
]
