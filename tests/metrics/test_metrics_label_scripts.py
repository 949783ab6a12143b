"""Speaker labels in scripts with combining marks, decomposed accents and colon variants make turns; the word count
of scripts without spaces says what it counts."""

from __future__ import annotations

import unicodedata

import pytest

from vispod.metrics.language import count_words, detect_language
from vispod.metrics.speaker_turns import parse_turns
from vispod.metrics.style import style_of_text

PAIRS = {
    "hindi": ("राहुल", "प्रिया", "आज हम समुद्र तट पर गए।", "वह दिन बहुत सुंदर था।"),
    "bengali": ("সুমিত", "অর্পিতা", "আমরা পাহাড়ে গিয়েছিলাম।", "খুব সুন্দর ছিল।"),
    "tamil": ("கார்த்திக்", "மீனா", "நாங்கள் கடற்கரைக்கு சென்றோம்.", "அது அழகாக இருந்தது."),
    "thai": ("สมชาย", "มาลี", "วันนี้เราไปทะเล", "อากาศดีมาก"),
    "french-nfd": (unicodedata.normalize("NFD", "Élodie"), "Zoë", "On part en Bretagne.", "Les crêpes !"),
}


@pytest.mark.parametrize("script", PAIRS)
def test_labels_with_combining_marks_make_turns(script: str) -> None:
    a, b, line_a, line_b = PAIRS[script]
    text = f"{a}: {line_a}\n{b}: {line_b}\n{a}: {line_b}\n{b}: {line_a}"
    turns = parse_turns(text)
    assert len(turns) == 4
    assert [t.speaker for t in turns] == [unicodedata.normalize("NFC", n) for n in (a, b, a, b)]
    assert style_of_text(text).num_speakers == 2


@pytest.mark.parametrize("colon", ["\ufe55", "\u2236", "\uff1a"])
def test_colon_variants_end_a_label(colon: str) -> None:
    turns = parse_turns(f"Alex{colon} Hello there.\nSam{colon} Hi Alex.\nAlex{colon} Shall we start?")
    assert [t.speaker for t in turns] == ["Alex", "Sam", "Alex"]


def test_scripts_without_spaces_are_named_and_counted_per_phrase() -> None:
    thai = "วันนี้เราไปทะเล อากาศดีมาก"  # two phrases of several words each
    assert detect_language(thai) == "th"
    assert count_words(thai) == 2  # phrases, not words: the language is named so nobody compares it with English
    assert style_of_text(f"สมชาย: {thai}\nมาลี: {thai}").language == "th"
