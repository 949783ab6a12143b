"""What a speaker label is made of in any script, shared by the generator's parser and the metrics' turn counter.

Names in Indic, Thai, Lao, Khmer and Burmese scripts, and accented names typed in decomposed form (NFD "Élodie"),
carry combining marks (Unicode category M), which are neither letters nor digits to `str.isalnum` and not `\\w`
to `re`; a label check that accepts only those sees no name there. Colons come in several code points.
"""

from __future__ import annotations

import unicodedata

# ASCII, full-width (Chinese, Japanese), small (U+FE55), ratio (U+2236), vertical presentation form (U+FE13).
LABEL_COLONS = (":", "\uff1a", "\ufe55", "\u2236", "\ufe13")


def is_mark(char: str) -> bool:
    """A combining mark (vowel signs, viramas, accents typed apart from their letter)."""
    return unicodedata.category(char).startswith("M")


def is_name_char(char: str) -> bool:
    return char.isalnum() or is_mark(char)


def normalise_label_text(text: str) -> str:
    """NFC: an accent typed apart from its letter joins it, so 'É' is one letter as in the requested name."""
    return unicodedata.normalize("NFC", text)
