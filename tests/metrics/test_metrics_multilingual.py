"""Robust style metrics beyond ASCII: accented and caseless speaker labels, words counted per language."""

from __future__ import annotations

from vispod.metrics.language import count_words, detect_language
from vispod.metrics.speaker_turns import parse_turns
from vispod.metrics.style import style_of_dialogue, style_of_text
from vispod.v1 import common_pb2

FRENCH = """Élodie: Bonjour et bienvenue ! Aujourd'hui on part en Bretagne.
Zoë: Merci Élodie. La mer était grise mais les crêpes étaient parfaites.
Élodie: Et le phare, tu l'as vu de près ?
Zoë: Oui, au coucher du soleil. Inoubliable."""

CHINESE = """主持人：欢迎收听我们的节目。今天我们聊聊海边的旅行。
嘉宾：谢谢邀请！那天的天气非常好。
主持人：你们去了哪里？
嘉宾：我们去了灯塔，还吃了海鲜。"""


def test_accented_labels_make_turns_and_speakers() -> None:
    turns = parse_turns(FRENCH)
    assert [t.speaker for t in turns] == ["Élodie", "Zoë", "Élodie", "Zoë"]
    r = style_of_text(FRENCH)
    assert (r.num_turns, r.num_speakers) == (4, 2)
    assert r.words == len(FRENCH.split()) - 4  # every word but the four labels


def test_chinese_labels_with_a_fullwidth_colon_and_words_by_character() -> None:
    turns = parse_turns(CHINESE)
    assert [t.speaker for t in turns] == ["主持人", "嘉宾", "主持人", "嘉宾"]
    assert turns[1].text == "谢谢邀请！那天的天气非常好。"
    assert turns[1].words == 12  # 12 Han characters; punctuation is not a word
    r = style_of_text(CHINESE)
    assert (r.num_turns, r.num_speakers) == (4, 2)
    assert r.words == 20 + 12 + 6 + 11
    assert r.language == "zh"
    assert r.question_rate == 0.25  # the full-width question mark counts


def test_language_is_named() -> None:
    assert style_of_text(FRENCH).language == "und"  # space-separated words; language not declared
    assert detect_language("これは日本語の文です。カメラ") == "ja"
    assert detect_language("오늘은 바다에 갔어요") == "ko"
    assert detect_language("hello there") == "und"
    d = common_pb2.Dialogue(text=FRENCH, language="fr")
    assert style_of_dialogue(d).language == "fr"
    assert style_of_dialogue(d).to_proto().language == "fr"


def test_mixed_text_counts_cjk_by_character_and_the_rest_by_spaces() -> None:
    assert count_words("We ate 北京烤鸭 twice") == 3 + 4
    assert count_words("don't stop—now") == 2  # unchanged for space-separated text
