"""The generator's transcript parser reads requested names in any script, decomposed accents and colon variants."""

from __future__ import annotations

import unicodedata

import pytest

from vispod.generator.parsing import parse_transcript


@pytest.mark.parametrize(("a", "b"), [("राहुल", "प्रिया"), ("সুমিত", "অর্পিতা"), ("கார்த்திக்", "மீனா"), ("สมชาย", "มาลี"),
                                      ("Élodie", "Zoë")])
def test_requested_names_with_combining_marks_are_labels(a: str, b: str) -> None:
    nfd_a = unicodedata.normalize("NFD", a)  # a model may write the name decomposed
    text = f"{nfd_a}: Hello, and welcome.\n{b}: Thanks, glad to be here.\n{a}: Let us begin."
    result = parse_transcript(text, [a, b])
    assert result.ok, result.error
    assert [t.speaker for t in result.turns] == [a, b, a]


@pytest.mark.parametrize("colon", ["\ufe55", "\u2236", "\uff1a"])
def test_colon_variants_end_a_label(colon: str) -> None:
    result = parse_transcript(f"Alex{colon} Hello there.\nSam{colon} Hi Alex.", ["Alex", "Sam"])
    assert result.ok, result.error
    assert [(t.speaker, t.text) for t in result.turns] == [("Alex", "Hello there."), ("Sam", "Hi Alex.")]


def test_invented_names_in_a_caseless_script_are_mapped_like_latin_ones() -> None:
    result = parse_transcript("สมชาย: สวัสดี\nมาลี: สวัสดีค่ะ.", ["Host", "Guest"])
    assert result.ok, result.error
    assert [t.speaker for t in result.turns] == ["Host", "Guest"]
