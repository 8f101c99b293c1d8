"""Words that reach templates as data (statuses, channels, roles...), listed so Babel extracts them."""


def N_(message: str) -> str:
    return message


TERMS = [
    # conversation status
    N_("open"), N_("pending"), N_("snoozed"), N_("resolved"), N_("all"),
    # priority
    N_("low"), N_("normal"), N_("high"), N_("urgent"),
    # channels
    N_("web"), N_("api"), N_("email"), N_("chat"), N_("sms"), N_("whatsapp"), N_("call"), N_("review"),
    # identity kinds
    N_("phone"), N_("chat_visitor"), N_("review_handle"),
    # roles
    N_("agent"), N_("supervisor"), N_("admin"),
    # delivery
    N_("queued"), N_("sent"), N_("failed"),
]  # fmt: skip
