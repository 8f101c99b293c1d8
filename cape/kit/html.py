"""HTML from outside (email, rich web forms) is sanitised here before anyone sees it."""

from __future__ import annotations

import html

import nh3

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i",
    "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "u", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


def sanitize_html(value: str, *, allow_remote_images: bool = False) -> str:
    """Keep formatting, drop scripts, styles, handlers and (by default) remote images."""
    schemes = {"http", "https", "mailto", "cid"}
    cleaned = nh3.clean(
        value,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=schemes,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=None if allow_remote_images else _block_remote_images,
    )
    return cleaned


def _block_remote_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.startswith("cid:"):
        return None
    return value


def text_to_html(text: str) -> str:
    """Plain text shown as HTML: escaped, line breaks kept."""
    return "<br>".join(html.escape(line) for line in text.splitlines())
