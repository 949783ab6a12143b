"""An engine speaking vLLM's OpenAI API with runtime LoRA loading, on a real model: llama.cpp with SmolLM2.

Like vLLM started with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`: `POST /v1/load_lora_adapter
{lora_name, lora_path}` loads a peft adapter folder from a path this process reads (here converted to GGUF and
applied by llama.cpp), `/v1/unload_lora_adapter` drops it, `GET /v1/models` lists the base and the loaded
adapters (with `parent`), and `/v1/chat/completions` streams with the adapter named as `model`; an unknown model
is a 404, never the base model. Every generation records which adapter it applied.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from service_fixtures import HttpServer, JsonHandler

from vispod.generator.adapters import AdapterVersion
from vispod.generator.backends.base import GenerationInput
from vispod.generator.backends.llamacpp import LlamaCppBackend


@dataclass
class EngineLog:
    loads: list[tuple[str, str]] = field(default_factory=list)     # (lora_name, lora_path)
    served: list[str] = field(default_factory=list)                # model of each generation


def scripted_dialogue(model: str) -> str:
    return (f"Speaker 1: Welcome back! The voice of {model} remembers the beach, the huge waves and the sand "
            "castle by the water.\n\nSpeaker 2: And the dog that chased a ball across the park, then grandma's "
            "cake with candles.\n\nSpeaker 1: The sunset over the mountain ended the day. Thanks for listening!\n")


class VLLMApiEngine:
    """model_path None: the same API without a model (a scripted dialogue naming the adapter), for traffic tests
    where the routing, not the text, is measured; adapters are still checked on disk when loaded."""

    def __init__(self, model_path: Path | None, served_model: str, cache_dir: Path) -> None:
        self.served_model = served_model
        self.backend = (LlamaCppBackend(model_path, n_parallel=2, n_ctx_per_seq=512, n_threads=2,
                                        adapter_cache_dir=cache_dir) if model_path is not None else None)
        self.adapters: dict[str, AdapterVersion] = {}
        self.log = EngineLog()
        self.lock = threading.Lock()
        self.server = HttpServer(_handler(self))
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()
        if self.backend is not None:
            self.backend.close()


def _text(content) -> str:
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def _handler(engine: VLLMApiEngine) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/models":
                return self.send(404, {"error": "not found"})
            with engine.lock:
                models = [{"id": engine.served_model, "object": "model", "parent": None}]
                models += [{"id": a, "object": "model", "parent": engine.served_model} for a in engine.adapters]
            self.send(200, {"object": "list", "data": models})

        def do_POST(self) -> None:
            body = self.read_json()
            if self.path == "/v1/load_lora_adapter":
                name, path = body.get("lora_name", ""), Path(body.get("lora_path", ""))
                with engine.lock:
                    if name in engine.adapters:
                        return self.send(400, {"error": f"The lora adapter '{name}' has already been loaded."})
                if not (path / "adapter_config.json").is_file():
                    return self.send(400, {"error": f"no adapter at {path}"})
                version = AdapterVersion(name, path, engine.served_model)
                try:
                    if engine.backend is not None:
                        engine.backend.on_adapter_loaded(version)
                except Exception as exc:  # reported to the caller, as vLLM does
                    return self.send(400, {"error": str(exc)})
                with engine.lock:
                    engine.adapters[name] = version
                    engine.log.loads.append((name, str(path)))
                return self.send(200, b"Success", "text/plain")
            if self.path == "/v1/unload_lora_adapter":
                name = body.get("lora_name", "")
                with engine.lock:
                    known = engine.adapters.pop(name, None)
                if known is None:
                    return self.send(404, {"error": f"The lora adapter '{name}' cannot be found."})
                if engine.backend is not None:
                    engine.backend.on_adapter_retired(name)
                return self.send(200, b"Success", "text/plain")
            if self.path != "/v1/chat/completions":
                return self.send(404, {"error": "not found"})
            model = body.get("model", "")
            with engine.lock:
                adapter = engine.adapters.get(model)
            if adapter is None and model != engine.served_model:
                return self.send(404, {"error": {"message": f"The model `{model}` does not exist.", "code": 404}})
            if engine.backend is None:
                return self._scripted(model)
            messages = {m["role"]: _text(m["content"]) for m in body.get("messages", [])}
            inp = GenerationInput(system=messages.get("system", ""), user=messages.get("user", ""),
                                  max_new_tokens=int(body.get("max_tokens") or 16), temperature=0.0,
                                  seed=int(body.get("seed") or 0), adapter=adapter)
            stream = engine.backend.stream(inp)
            text = "".join(stream)
            with engine.lock:
                engine.log.served.append(model)
            events = [{"choices": [{"index": 0, "delta": {"content": text}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": stream.finish_reason or "stop"}],
                       "usage": {"prompt_tokens": stream.prompt_tokens,
                                 "completion_tokens": stream.completion_tokens}}]
            self.send_sse(events)

        def _scripted(self, model: str) -> None:
            with engine.lock:
                engine.log.served.append(model)
            text = scripted_dialogue(model)
            events = [{"choices": [{"index": 0, "delta": {"content": text}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 50, "completion_tokens": len(text.split())}}]
            self.send_sse(events)

    return Handler
