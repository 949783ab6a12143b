"""Words per language: scripts written without spaces (Chinese, Japanese) count one word per character.

`detect_language` names the assumption from the script alone: "zh" (Han), "ja" (kana present), "ko"
(Hangul), "th", "lo", "km", "my" (Thai, Lao, Khmer, Burmese), else "und" — undetermined, words separated
by spaces.

Thai, Lao, Khmer and Burmese write words without spaces and put a space between phrases or sentences;
telling their words apart needs a dictionary segmenter, which vispod does not ship. For them `count_words`
counts those space-separated phrases: a figure several times smaller than the number of words, comparable
only between texts of the same language, which is why the language is named beside it.
"""

from __future__ import annotations

import re

# Han (CJK unified ideographs, extension A, compatibility) and Japanese kana.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{CJK_CHARS}]")
_KANA = re.compile("[\u3040-\u30ff]")
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff]")
# Scripts written without spaces between words, counted per space-separated phrase (see the module docstring).
_PHRASE_SCRIPTS = {"th": re.compile("[\u0e00-\u0e7f]"), "lo": re.compile("[\u0e80-\u0eff]"),
                   "km": re.compile("[\u1780-\u17ff]"), "my": re.compile("[\u1000-\u109f]")}
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
    for code, script in _PHRASE_SCRIPTS.items():
        if len(script.findall(text)) / letters >= 0.3:
            return code
    return "und"


def count_words(text: str) -> int:
    """Space-separated words; inside a chunk that holds CJK characters, each character is a word and
    each run of other letters is one more ('We ate 北京烤鸭 twice' = 7). Thai, Lao, Khmer and Burmese count one
    per space-separated phrase (module docstring)."""
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
