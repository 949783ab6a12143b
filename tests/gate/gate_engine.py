"""A local HTTP server speaking the OpenAI chat-completions API for both engines of the full loop:
the generator's `openai` backend (SSE streaming; the adapter is the model name; runtime LoRA loading) and the
judge's `vllm` backend (a JSON verdict). Scripted: each model writes a recognisable dialogue, and the judge
prefers the dialogue written by `preferred` in both presentation orders."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

from service_fixtures import HttpServer, JsonHandler

JUDGE_MODEL = "judge"


def dialogue_for(model: str) -> str:
    return (f"Speaker 1: Welcome back! Today the voice of {model} remembers the beach trip, the huge waves "
            "and the sand castle by the water.\n\n"
            "Speaker 2: I loved the dog that chased a ball across the sand. Grandma unpacked a picnic, too.\n\n"
            "Speaker 1: Then the sun went down behind the pier, and we walked home happy.\n\n"
            "Speaker 2: What a day. Thanks for listening, everyone!\n")


@dataclass
class Engine:
    url: str = ""
    preferred: str = ""
    loaded: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verdict(self, prompt: str) -> str:
        a = re.search(r"Dialogue A:\n<<<\n(.*?)\n>>>", prompt, re.S)
        b = re.search(r"Dialogue B:\n<<<\n(.*?)\n>>>", prompt, re.S)
        marker = f"the voice of {self.preferred} "
        in_a, in_b = (m is not None and marker in m.group(1) for m in (a, b))
        winner = "A" if in_a and not in_b else "B" if in_b and not in_a else "tie"
        return json.dumps({"winner": winner, "rationale": "scripted preference"})


def _handler(engine: Engine) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            if self.path.endswith("/load_lora_adapter"):
                with engine.lock:
                    engine.loaded.append(body.get("lora_name", ""))
                return self.send(200, b"{}")
            if self.path.endswith("/unload_lora_adapter"):
                return self.send(200, b"{}")
            if not self.path.endswith("/chat/completions"):
                return self.send(404, b'{"error": "not found"}')
            model = body.get("model", "")
            if model == JUDGE_MODEL:
                user = body["messages"][-1]["content"]
                prompt = user if isinstance(user, str) else "".join(p.get("text", "") for p in user)
                answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": engine.verdict(prompt)},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 100, "completion_tokens": 10}}
                return self.send(200, answer)
            with engine.lock:
                engine.models.append(model)
            text = dialogue_for(model)
            events = [{"choices": [{"index": 0, "delta": {"content": text[i:i + 40]}}]}
                      for i in range(0, len(text), 40)]
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 50, "completion_tokens": len(text.split())}})
            self.send_sse(events)

    return Handler


class EngineServer:
    def __init__(self) -> None:
        self.engine = Engine()
        self.server = HttpServer(_handler(self.engine))
        self.engine.url = self.server.url

    def stop(self) -> None:
        self.server.stop()
