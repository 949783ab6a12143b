"""A CPU stand-in for text-generation-inference on the local cluster: same contract, small real model.

Like TGI it reads MODEL_ID and LORA_ADAPTERS (`name@version=/dir,…`) once, at start-up: a new adapter needs a new
pod, which is what the generator's Kubernetes rollout makes (it patches LORA_ADAPTERS of the tgi Deployment).
It serves GET /health and the OpenAI-compatible POST /v1/chat/completions (streamed as server-sent events) that
the generator's TGI backend calls; `model` picks an adapter by its id ("tgi" or anything else: the base model).
MODEL_ID is a GGUF file or an embedded model's name (smollm2); each adapter is the PEFT folder the adapter-sync
init container verified, converted to a GGUF LoRA with the generator's own converter.

  python tgi_cpu_engine.py --hostname 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1 << 20


def load_models(model_id: str, lora_adapters: str, cache: Path) -> dict[str, object]:
    from llama_cpp import Llama

    from vispod.common.embedded_models import resolve_gguf
    from vispod.generator.adapters.gguf_lora import cached_gguf, read_base

    base = Path(resolve_gguf(model_id))
    models: dict[str, object] = {"": Llama(model_path=str(base), n_ctx=2048, n_threads=2, verbose=False)}
    info = None
    for entry in filter(None, (e.strip() for e in lora_adapters.split(","))):
        adapter_id, _, folder = entry.partition("=")
        info = info or read_base(base)
        gguf = cached_gguf(Path(folder), info, cache)
        models[adapter_id] = Llama(model_path=str(base), lora_path=str(gguf), n_ctx=2048, n_threads=2, verbose=False)
        print(f"tgi-cpu: serving adapter {adapter_id} from {folder}", flush=True)
    return models


class Engine:
    def __init__(self, models: dict[str, object]) -> None:
        self.models = models
        self.lock = threading.Lock()  # one generation at a time on 2 cores

    def model(self, name: str) -> object:
        return self.models.get(name) or self.models[""]


def handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def _json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {"status": "ok"})
            elif self.path in ("/info", "/v1/models"):
                self._json(200, {"object": "list", "data": [{"id": k or "tgi"} for k in engine.models]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": f"body over {MAX_BODY} bytes"})
                return
            try:
                req = json.loads(self.rfile.read(length))
                messages = req["messages"]
            except (ValueError, KeyError) as exc:
                self._json(422, {"error": f"bad request: {exc}"})
                return
            llm = engine.model(str(req.get("model", "")))
            kwargs = {"max_tokens": int(req.get("max_tokens") or 256),
                      "temperature": float(req.get("temperature", 0.7)), "seed": req.get("seed")}
            with engine.lock:
                if not req.get("stream"):
                    self._json(200, llm.create_chat_completion(messages=messages, **kwargs))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
                for chunk in llm.create_chat_completion(messages=messages, stream=True, **kwargs):
                    chunk["id"], chunk["model"] = cid, req.get("model", "tgi")
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hostname", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    started = time.monotonic()
    models = load_models(os.environ.get("MODEL_ID", "smollm2"), os.environ.get("LORA_ADAPTERS", ""),
                         Path(os.environ.get("HOME", "/tmp")) / "gguf-lora")
    print(f"tgi-cpu: {len(models) - 1} adapters loaded in {time.monotonic() - started:.1f} s", flush=True)
    ThreadingHTTPServer((args.hostname, args.port), handler(Engine(models))).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
