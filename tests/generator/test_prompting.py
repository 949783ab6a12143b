"""The versioned prompt: the paper's instruction, extended with speakers, style, language, captions."""

from __future__ import annotations

from vispod.generator.prompting import available_versions, build_prompt
from vispod.v1 import common_pb2


def _speakers() -> list[common_pb2.Speaker]:
    return [common_pb2.Speaker(name="Alice", persona="a curious travel host"), common_pb2.Speaker(name="Speaker 2")]


def test_pixel_prompt_has_the_paper_instruction_and_speakers() -> None:
    p = build_prompt(speakers=_speakers(), num_images=5, target_words=800, language="en", style="warm, funny",
                     captions=None, version="v1")
    assert "v1" in available_versions() and p.version == "v1"
    for needle in ("Q&A-style podcast", "about 800 words", '"Speaker 1:", "Speaker 2:"', "never mention",
                   "Speaker 1 is Alice: a curious travel host.", "- Speaker 2.", "in English", "Style: warm, funny",
                   "in story order"):
        assert needle in p.user, needle
    assert "Scene 1" not in p.user


def test_caption_prompt_lists_scenes_in_order_and_retry_names_the_reason() -> None:
    p = build_prompt(speakers=_speakers(), num_images=2, target_words=300, language="de", style="",
                     captions=["a beach", "a cake"], version="v1", retry_reason="only one speaker spoke")
    assert p.user.index("Scene 1: a beach") < p.user.index("Scene 2: a cake")
    assert "in German" in p.user and "about 300 words" in p.user and "Style:" not in p.user
    assert "only one speaker spoke" in p.user


FACTS = ["a dog and a bench", "a cake and two people", "nothing recognised with confidence"]


def test_prompt_v2_gives_each_scenes_facts_only_in_its_marker_on_the_scene_plan() -> None:
    v1 = build_prompt(speakers=_speakers(), num_images=3, target_words=300, language="en", style="", captions=FACTS,
                      version="v1", plan="scenes", facts=True)
    v2 = build_prompt(speakers=_speakers(), num_images=3, target_words=300, language="en", style="", captions=FACTS,
                      version="v2", plan="scenes", facts=True)
    assert "v2" in available_versions()
    assert "Scene 2: a cake and two people" in v1.user               # v1: every scene's objects listed up front
    assert not any(text in v2.user for text in FACTS)                 # v2: none (the markers carry them)
    assert "its own marker lists, not those of another scene" in v2.user and "Do not invent" in v2.user
    # the whole-dialogue plan writes no markers: v2 lists the scenes there as v1 does
    whole = build_prompt(speakers=_speakers(), num_images=3, target_words=300, language="en", style="",
                         captions=FACTS, version="v2", plan="whole", facts=True)
    assert "Scene 2: a cake and two people" in whole.user
    captions = build_prompt(speakers=_speakers(), num_images=3, target_words=300, language="en", style="",
                            captions=FACTS, version="v2", plan="scenes", facts=False)
    assert "Scene 2: a cake and two people" in captions.user


def test_a_version_takes_the_files_it_does_not_reword_from_the_version_it_extends() -> None:
    from vispod.generator.prompting import BY_MARKER, has_prompt_file, prompt_file

    assert prompt_file("v2", "user.txt") == prompt_file("v1", "user.txt")           # from v1, through extends.txt
    assert has_prompt_file("v2", BY_MARKER) and not has_prompt_file("v1", BY_MARKER)
    assert not has_prompt_file("v2", "no_such_file.txt") and not has_prompt_file("v9", "user.txt")
