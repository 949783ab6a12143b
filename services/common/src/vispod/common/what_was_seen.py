"""What the model that wrote a dialogue saw of its photos, said the same way by every console and report."""

from __future__ import annotations

from vispod.v1 import events_pb2

_SHORT = {
    events_pb2.INPUT_MODE_PIXELS: "pixels",
    events_pb2.INPUT_MODE_CAPTIONS: "captions (not pixels)",
    events_pb2.INPUT_MODE_FACTS: "perception facts (not pixels, no caption)",
    events_pb2.INPUT_MODE_CAPTIONS_AND_FACTS: "captions and perception facts (not pixels)",
}


def seen_short(input_mode: int) -> str:
    return _SHORT.get(input_mode, "unrecorded input")


def seen_note(d: events_pb2.DialogueGenerated) -> str:
    """One sentence: what the model read, and which perception models made the facts it read."""
    models = list(dict.fromkeys(m.name for ref in d.images for m in ref.perception.models))
    by = f" ({', '.join(models)})" if models else ""
    return {
        events_pb2.INPUT_MODE_PIXELS: "The model read the photos' pixels.",
        events_pb2.INPUT_MODE_CAPTIONS: "The model read the photos' captions, not their pixels.",
        events_pb2.INPUT_MODE_FACTS: f"The model read machine-detected facts about the photos{by}, not their pixels "
                                     "and no caption.",
        events_pb2.INPUT_MODE_CAPTIONS_AND_FACTS: f"The model read the photos' captions and machine-detected facts"
                                                  f"{by}, not their pixels.",
    }.get(d.input_mode, "What the model saw of the photos is not recorded.")
