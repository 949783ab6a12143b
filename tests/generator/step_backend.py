"""A text backend that runs a scene plan's steps without a model (the engine's wiring, not a model's words): each
step's text, then one scripted line for the turn; without steps, the lines under alternating labels. It keeps
every GenerationInput it was given."""

from __future__ import annotations

from collections.abc import Iterator

from vispod.generator.backends.base import CAPTIONS, GenerationInput, GenerationStream


class ScriptedStepBackend:
    name = "scripted"
    model = "scripted-steps"
    input_mode = CAPTIONS
    random_weights = True
    supports_prefill = True
    supports_steps = True

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines           # turn i writes lines[i % len(lines)]
        self.inputs: list[GenerationInput] = []

    def stream(self, inp: GenerationInput) -> GenerationStream:
        self.inputs.append(inp)

        def chunks() -> Iterator[str]:
            if not inp.steps:
                yield "\n".join(f"Speaker {i % 2 + 1}: {line}" for i, line in enumerate(self.lines))
                return
            last = ""
            for i, step in enumerate(inp.steps):
                text = ("\n" if step.new_line and last not in ("", "\n") else "") + step.text
                text += " " + self.lines[i % len(self.lines)]
                yield text
                last = text[-1]

        return GenerationStream(chunks(), prompt_tokens=1, completion_tokens=len(self.lines), finish_reason="stop")

    def servable(self, adapter_id: str) -> bool:
        return True

    def on_adapter_loaded(self, adapter) -> None:
        pass

    def on_adapter_retired(self, adapter_id: str) -> None:
        pass

    def close(self) -> None:
        pass
