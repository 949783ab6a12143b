"""Words per language: scripts written without spaces (Chinese, Japanese) count one word per character.

`detect_language` names the assumption from the script alone: "zh" (Han), "ja" (kana present), "ko"
(Hangul), else "und" — undetermined, words separated by spaces.
"""

from __future__ import annotations

import re

# Han (CJK unified ideographs, extension A, compatibility) and Japanese kana.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{CJK_CHARS}]")
_KANA = re.compile("[\u3040-\u30ff]")
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff]")
_LETTER = re.compile(r"[^\W\d_]")
# A CJK character alone, or a run of other word characters (with inner apostrophes).
_TOKEN = re.compile(f"[{CJK_CHARS}]|[^\\W{CJK_CHARS}]+(?:['’][^\\W{CJK_CHARS}]+)*")
_NON_CJK_WORD = re.compile(f"[^\\W{CJK_CHARS}]")


def detect_language(text: str) -> str:
    letters = len(_LETTER.findall(text))
    if not letters:
        return "und"
    cjk, hangul = len(_CJK.findall(text)), len(_HANGUL.findall(text))
    if cjk / letters >= 0.3:
        return "ja" if _KANA.search(text) else "zh"
    if hangul / letters >= 0.3:
        return "ko"
    return "und"


def count_words(text: str) -> int:
    """Space-separated words; inside a chunk that holds CJK characters, each character is a word and
    each run of other letters is one more ('We ate 北京烤鸭 twice' = 7)."""
    total = 0
    for chunk in text.split():
        if _CJK.search(chunk):
            total += len(_CJK.findall(chunk))
            total += len([t for t in _TOKEN.findall(chunk) if _NON_CJK_WORD.match(t)])
        else:
            total += 1
    return total


def word_tokens(text: str) -> list[str]:
    """Lower-case word tokens (for n-gram measures): CJK characters one by one, other words whole."""
    return _TOKEN.findall(text.lower())
