"""The widget script: small, and the same strings in every language (without a browser)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

WIDGET = Path(__file__).resolve().parents[2] / "cape" / "web" / "static" / "widget.js"


def widget_strings() -> dict[str, dict[str, str]]:
    found = re.search(r"var STRINGS = (\{.*?\n  \});", WIDGET.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "widget.js keeps its strings in one `var STRINGS = {...};` block of JSON"
    return json.loads(found.group(1))


def test_the_widget_is_under_30_kb_gzipped():
    assert len(gzip.compress(WIDGET.read_bytes(), compresslevel=9)) < 30 * 1024


def test_every_language_has_every_string_with_the_same_placeholders():
    strings = widget_strings()
    assert set(strings) == {"en", "fr", "da"}
    for language, table in strings.items():
        assert table.keys() == strings["en"].keys(), language
        for key, text in table.items():
            assert text.strip(), (language, key)
            assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", strings["en"][key])), (language, key)


def test_the_launcher_says_chat_and_the_input_says_message_in_every_language():
    for language, table in widget_strings().items():
        assert "chat" in table["launcher"].lower(), language
        assert "message" in table["message"].lower(), language


def test_french_punctuation_has_its_no_break_spaces():
    """As in the catalogues: a no-break space before a colon, a narrow one before ; ? !"""
    wrong = [t for t in widget_strings()["fr"].values() if re.search(r"(?<!\u00a0):|(?<![\u202f\u00a0])[;?!]", t)]
    assert not wrong
