"""text-generation-inference (TGI) over plain httpx.

Requests go to TGI's OpenAI-compatible `/v1/chat/completions` route (TGI applies the model's chat
template there): images as `image_url` parts with data URIs, in story order before the
instruction; the adapter is selected per request by the `model` field, which TGI reads as the
`adapter_id`; output is streamed (SSE). Not huggingface_hub's InferenceClient: it refuses every request, TGI's
included, while HF_HUB_OFFLINE=1, which every vispod image sets (the cluster's dialogues through TGI all failed).

TGI's limits, which this backend respects rather than hides:
- LoRA adapters are fixed when the server starts (`LORA_ADAPTERS=id,name=/path,…`); a new adapter
  needs a restart. With `tgi_deployment` set, the lifecycle's held set (active, canary, previous
  active, newest candidates) rolls that Deployment when it changes (backends.tgi_rollout), and an
  adapter becomes routable once every replica has it; otherwise `tgi_adapters` lists the ids the
  server was started with. An adapter the server does not have is reported as
  unavailable (a FAILED result), never silently served by the base model.
- TGI serves no Qwen3-VL; its Qwen-VL family stops at Qwen2.5-VL (also Qwen2-VL, Idefics2/3,
  LLaVA-Next, PaliGemma, Gemma3, Mllama, Llama4). Use `local` or `openai` (vLLM) for Qwen3-VL.
- TGI is in maintenance mode (since Dec 2025).
"""

from __future__ import annotations

import logging

import httpx

from vispod.common.http_retry import RetryPolicy
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.backends.base import (
    BackendError,
    GenerationInput,
    GenerationStream,
)
from vispod.generator.backends.openai import ChatServerBackend
from vispod.generator.backends.tgi_rollout import AdapterRollout, KubernetesRollout

log = logging.getLogger(__name__)


class TGIBackend(ChatServerBackend):
    name = "tgi"

    def __init__(self, base_url: str, adapters: list[str], *, text_only: bool = False, timeout_s: float = 120.0,
                 retry: RetryPolicy | None = None, model_label: str = "tgi", rollout: AdapterRollout | None = None
                 ) -> None:
        super().__init__(base_url, text_only=text_only, retry=retry)
        self.adapters = frozenset(adapters)
        # With a rollout, the held set rolls the TGI Deployment when it changes and an adapter is servable once
        # every replica has it; without one, `adapters` is the fixed list TGI was started with.
        self.rollout = rollout
        self._pending: tuple[str, ...] | None = None   # a held set whose rollout could not start yet
        self.model = model_label or "tgi"
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))

    @classmethod
    def from_settings(cls, s) -> TGIBackend:
        rollout = None
        if s.tgi_deployment:
            rollout = KubernetesRollout(s.tgi_deployment, base_url=s.tgi_url, namespace=s.tgi_namespace,
                                        adapter_dir=s.tgi_adapter_dir)
        return cls(s.tgi_url, s.tgi_adapters, text_only=s.text_only, timeout_s=s.request_timeout_s,
                   retry=cls.retry_from(s), model_label=s.remote_model_id or "tgi", rollout=rollout)

    def servable(self, adapter_id: str) -> bool:
        if self.rollout is None:
            return adapter_id in self.adapters
        if self._pending is not None:
            self.hold(self._pending)
        # A miss is asked again (a decision right after a rollout completed must not be vetoed by a stale answer).
        return adapter_id in self.rollout.ready() or adapter_id in self.rollout.ready(max_age_s=0.05)

    def hold(self, adapter_ids: tuple[str, ...]) -> None:
        """The registry's held set (after every lifecycle change, once replayed): TGI restarts only if it differs
        from the set TGI runs."""
        if self.rollout is None:
            return
        try:
            self.rollout.hold(adapter_ids)
            self._pending = None
        except Exception as exc:  # API server or RBAC trouble: retried on the next routing check
            self._pending = adapter_ids
            log.warning("TGI rollout not started: retrying", extra={"adapters": list(adapter_ids),
                                                                    "error": str(exc)})

    def on_adapter_loaded(self, adapter: AdapterVersion) -> None:
        if self.rollout is None and adapter.adapter_id not in self.adapters:
            log.warning("TGI was not started with this adapter; it stays unroutable until TGI restarts with it",
                        extra={"adapter_id": adapter.adapter_id})

    def on_adapter_retired(self, adapter_id: str) -> None:
        pass  # TGI cannot unload: its adapters live as long as the server

    def stream(self, inp: GenerationInput) -> GenerationStream:
        if inp.adapter and not self.servable(inp.adapter.adapter_id):
            have = sorted(self.rollout.ready() if self.rollout is not None else self.adapters) or "none"
            raise AdapterUnavailable(f"TGI was not started with adapter {inp.adapter.adapter_id} (on every "
                                     f"replica; its adapters are fixed at start-up: {have})")
        model = inp.adapter.adapter_id if inp.adapter else "tgi"
        base_url = self.rollout.base_url if self.rollout is not None else self.base_url
        url = f"{base_url.rstrip('/')}/v1/chat/completions"
        return self.chat_completion(
            self._client, url, self.chat_body(inp, model), "TGI chat completion",
            lambda status, detail: BackendError(f"TGI rejected the request: HTTP {status} {detail}"))

    def close(self) -> None:
        self._client.close()
