"""English, French and Danish from day one: every interface string has a translation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "cape" / "i18n"


def extracted_ids() -> set[str]:
    method_map = [("cape/**.py", "python"), ("cape/web/templates/**.html", "jinja2")]
    return {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(ROOT), method_map=method_map)
    }


@pytest.mark.parametrize("language", ["fr", "da"])
def test_every_interface_string_is_translated(language):
    with (CATALOGS / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    # A plural message is keyed by its singular, and translated when every form is.
    translated = {
        m.id[0] if isinstance(m.id, tuple) else m.id
        for m in catalog
        if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    missing = sorted(extracted_ids() - translated)
    assert not missing, f"untranslated in {language} (run pybabel extract/update, see README): {missing}"


def test_negotiation_picks_a_served_language():
    from cape.i18n import negotiate

    assert negotiate("fr-CA,fr;q=0.9,en;q=0.8") == "fr"
    assert negotiate("da") == "da"
    assert negotiate("de-DE,de;q=0.9") == "en"
    assert negotiate("") == "en"


def test_french_punctuation_has_its_no_break_spaces():
    """« Langue : danois », « Pourquoi ? »: a no-break space before a colon, a narrow one before ; ? !
    (an ordinary space would let the line break before the mark)."""
    with (CATALOGS / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    texts = [text for m in catalog if m.id for text in (m.string if isinstance(m.string, tuple) else (m.string,))]
    wrong = [t for t in texts if re.search(r"(?<!\u00a0):(?!//)|(?<![\u202f\u00a0])[;?!]", t)]
    assert not wrong, f"French wants « mot\u00a0: » and « mot\u202f? »: {wrong}"
