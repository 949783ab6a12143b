"""OpenAI-compatible chat completions (vLLM) over httpx.

Images go as `image_url` parts holding data URIs (the generator fetched and checked them, so the
engine never fetches a caller's URL). The adapter is addressed as the model name; vLLM started
with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` loads new ones at run time via
`POST /v1/load_lora_adapter {lora_name, lora_path}` (`load_adapter`, called from the registry's
on_loaded hook) — the path must be readable by the vLLM server (a shared volume). vLLM applies
LoRA to the language model of a VLM only. Streaming is SSE (`data: {json}` … `data: [DONE]`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx

from vispod.common.http_retry import RetryPolicy, check_status, sse_events
from vispod.common.llm_server import EngineRefused, LoraServer, bearer, check_answer, transport_errors
from vispod.common.llm_server import chat_messages as server_messages
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.backends.base import (
    CAPTIONS,
    PIXELS,
    BackendError,
    BackendUnavailable,
    GenerationInput,
    GenerationStream,
    data_uri,
)
from vispod.generator.backends.engine_adapters import EngineAdapters, headless_replicas

log = logging.getLogger(__name__)


def chat_messages(inp: GenerationInput, text_only: bool) -> list[dict]:
    """The request's chat messages: the images (story order) before the instruction, none when text-only."""
    urls = [] if text_only else [data_uri(b, mime) for b, mime in inp.image_bytes]
    return server_messages(inp.system, inp.user, urls)


def chat_stream(events: Iterable[Mapping[str, Any]], result: GenerationStream, what: str,
                close: Callable[[], object]) -> Iterator[str]:
    """The text of OpenAI-style chat-completion chunks (vLLM's and TGI's SSE), recording usage and the
    finish reason on `result`; a timeout or broken connection mid-stream is BackendUnavailable. A stream that
    ends without a finish reason is a BackendError: the engine failed after its 200 (e.g. llama.cpp's server
    when its chat template raised), and its answer must not pass for a complete, empty one."""
    try:
        for event in events:
            if event.get("error"):
                raise BackendError(f"engine error mid-stream: {event['error']}")
            usage = event.get("usage")
            if usage:
                result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                result.completion_tokens = int(usage.get("completion_tokens") or 0)
            for choice in event.get("choices") or []:
                if choice.get("finish_reason"):
                    result.finish_reason = choice["finish_reason"]
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
        if not result.finish_reason:
            raise BackendError(f"{what} ended without a finish reason: the engine failed mid-answer (see its log)")
    except httpx.TimeoutException as exc:
        raise BackendUnavailable(f"{what} timed out: {exc}") from exc
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"{what} broke: {exc}") from exc
    finally:
        close()


class ChatServerBackend:
    """What the backends of an OpenAI-style chat server (vLLM's, TGI's) share: real weights, no prefilled answer
    and no scripted steps, the photos' pixels unless text-only, and requests under a retry policy."""

    random_weights = False
    supports_prefill = False
    supports_steps = False

    def __init__(self, base_url: str, *, text_only: bool, retry: RetryPolicy | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.text_only = text_only
        self.input_mode = CAPTIONS if text_only else PIXELS
        self.retry = retry or RetryPolicy()

    @staticmethod
    def retry_from(s) -> RetryPolicy:  # type: ignore[no-untyped-def]
        """The retry policy of the generator settings `s`."""
        return RetryPolicy(s.http_retries, s.backoff_base_s, s.backoff_max_s, s.backoff_max_s)

    def chat_body(self, inp: GenerationInput, model: str) -> dict[str, Any]:
        """A streamed chat completion's request (usage in the last chunk); `model` names the adapter or base."""
        return {"model": model, "messages": chat_messages(inp, self.text_only), "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": inp.max_new_tokens,
                "temperature": inp.temperature, "top_p": inp.top_p, "seed": inp.seed}

    def chat_completion(self, client: httpx.Client, url: str, body: dict[str, Any], what: str,
                        rejected: Callable[[int, str], Exception]) -> GenerationStream:
        """POSTs a streamed chat completion under the retry policy (errors mapped by llm_server, the one place);
        an error status not worth retrying becomes `rejected(status, detail)`."""

        def open_stream() -> httpx.Response:
            with transport_errors():
                r = client.send(client.build_request("POST", url, json=body), stream=True)
            if r.status_code >= 400:
                detail = r.read().decode("utf-8", "replace")[:300]
                r.close()
                check_answer(r, rejected, detail)
            return r

        response = self.retry.call(open_stream, what, exhausted=BackendUnavailable)
        result = GenerationStream(iter(()))
        result.chunks = chat_stream(sse_events(response.iter_lines()), result, what, response.close)
        return result


class OpenAIBackend(ChatServerBackend):
    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, text_only: bool = False,
                 timeout_s: float = 120.0, connect_timeout_s: float = 5.0, retry: RetryPolicy | None = None,
                 model_label: str = "", adapter_loading: str = "generator", replicas_url: str = "") -> None:
        super().__init__(base_url, text_only=text_only, retry=retry)
        self.served_model = model
        self.model = model_label or model
        self._client = httpx.Client(base_url=self.base_url, headers=bearer(api_key),
                                    timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._server = LoraServer(client=self._client)
        self._loaded: set[str] = set()
        # "sync": the engine pod's adapter-sync container loads verified versions from the adapter store; this
        # backend only names them, and routes to one once the engine lists it. "generator": this backend posts
        # its own verified copy's path (the engine must read the generator's disk: one machine, local use).
        if adapter_loading not in ("sync", "generator"):
            raise ValueError(f"adapter_loading must be sync or generator, not {adapter_loading!r}")
        replicas = headless_replicas(replicas_url) if replicas_url else None
        self.listed = EngineAdapters(self._server, replicas=replicas, api_key=api_key) \
            if adapter_loading == "sync" else None

    @classmethod
    def from_settings(cls, s) -> OpenAIBackend:
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else None
        return cls(s.openai_url, s.openai_model, api_key=key, text_only=s.text_only, timeout_s=s.request_timeout_s,
                   connect_timeout_s=s.connect_timeout_s,
                   retry=cls.retry_from(s), model_label=s.remote_model_id, adapter_loading=s.openai_adapter_loading,
                   replicas_url=s.openai_replicas_url)

    # --- adapters ----------------------------------------------------------------------------
    def servable(self, adapter_id: str) -> bool:
        """generator loading: any verified adapter (loaded at run time); sync: only what the engine lists now."""
        return self.listed is None or self.listed.has(adapter_id)

    def load_adapter(self, adapter: AdapterVersion) -> None:
        """POST /v1/load_lora_adapter; an adapter the engine already has counts as loaded."""

        def attempt() -> None:
            try:
                with transport_errors():
                    self._server.load(adapter.adapter_id, adapter.local_path,
                                      on_status=lambda r: check_status(r.status_code, r.headers, r.text[:200]))
            except EngineRefused as exc:
                raise AdapterUnavailable(str(exc)) from exc

        self.retry.call(attempt, f"load adapter {adapter.adapter_id}", exhausted=BackendUnavailable)
        self._loaded.add(adapter.adapter_id)
        log.info("adapter loaded into engine", extra={"adapter_id": adapter.adapter_id})

    def on_adapter_loaded(self, adapter: AdapterVersion) -> None:
        if self.listed is None:
            self.load_adapter(adapter)

    def on_adapter_retired(self, adapter_id: str) -> None:
        """POST /v1/unload_lora_adapter, best effort: a retired adapter only wastes engine memory. With sync
        loading the adapter-sync container unloads what falls out of its window."""
        if self.listed is not None:
            return
        self._server.unload(adapter_id)
        self._loaded.discard(adapter_id)

    # --- generation --------------------------------------------------------------------------
    def stream(self, inp: GenerationInput) -> GenerationStream:
        model = inp.adapter.adapter_id if inp.adapter else self.served_model
        if inp.adapter and self.listed is not None:
            if not self.listed.has(inp.adapter.adapter_id, fresh=True):
                raise AdapterUnavailable(f"the engine does not list adapter {inp.adapter.adapter_id} (yet): its "
                                         "adapter-sync container has not loaded a verified copy")
        elif inp.adapter and inp.adapter.adapter_id not in self._loaded:
            self.load_adapter(inp.adapter)  # e.g. after an engine restart the registry's hook did not see
        def rejected(status: int, detail: str) -> Exception:
            if status == 404 and inp.adapter:
                return AdapterUnavailable(f"engine does not serve adapter {model}: {detail}")
            return BackendError(f"engine rejected the request: HTTP {status} {detail}")

        return self.chat_completion(self._client, "/v1/chat/completions", self.chat_body(inp, model),
                                    "chat completion", rejected)

    def close(self) -> None:
        self._client.close()
