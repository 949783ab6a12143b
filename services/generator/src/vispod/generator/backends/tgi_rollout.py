"""TGI takes LoRA adapters only at start-up (`LORA_ADAPTERS=id=/path,…`): a change of its adapters is a rollout.

What TGI holds is the lifecycle's held set (vispod.common.adapter_store.retention: active, canary, previous active,
the newest candidate slots), the same rule as vLLM's sync. The generator hands it over after every lifecycle
change, once its registry has replayed the lifecycle topic (so a starting generator converges in one patch);
`hold` patches only when the set gains an adapter TGI does not run, so a restart (and its spare GPU) happens only
when the held set grows: a new candidate slot filled, a canary or active adapter TGI lacks. An adapter that only
left the set (retired, rejected) is dropped at the next restart.

`KubernetesRollout` patches the one TGI Deployment it may touch (a Role with get/patch on it by resourceName):
the adapter list goes into `LORA_ADAPTERS` of the TGI container and of its `adapter-sync` init container (which
fetches and verifies those versions from the adapter store into the shared volume before TGI starts), and the
list that was serving is kept in an annotation. Until the rollout is complete (every replica updated and
available), only adapters in both lists are servable, so the generator keeps routing to the previous adapter;
a failed init container (store outage, a rejected version) leaves the old pods serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

PREVIOUS = "vispod.dev/previous-lora-adapters"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class AdapterRollout(Protocol):
    base_url: str

    def hold(self, adapter_ids: Sequence[str]) -> bool:
        """Makes the engine hold exactly these adapters; starts a rollout (returns True) only when that set differs
        from the one it runs, and returns at once."""

    def ready(self, max_age_s: float | None = None) -> frozenset[str]:
        """Adapters every serving replica has now (an answer at most `max_age_s` old when given)."""


def lora_adapters_value(adapter_ids: list[str], adapter_dir: str) -> str:
    """TGI's LORA_ADAPTERS: `name@version=<dir>/<name>/<version>` each (where adapter-sync puts it)."""
    out = []
    for adapter_id in adapter_ids:
        name, _, version = adapter_id.partition("@")
        out.append(f"{adapter_id}={adapter_dir.rstrip('/')}/{name}/{version}")
    return ",".join(out)


def parse_lora_adapters(value: str) -> list[str]:
    return [e.split("=", 1)[0].strip() for e in (value or "").split(",") if e.strip()]


def _env(container: dict[str, Any], name: str) -> str:
    return next((e.get("value", "") for e in container.get("env") or [] if e.get("name") == name), "")


@dataclass(frozen=True)
class RolloutStatus:
    current: tuple[str, ...]      # the adapter list of the pod template
    previous: tuple[str, ...]     # the list before the last patch
    complete: bool                # every replica runs the current template and is available

    @property
    def servable(self) -> frozenset[str]:
        return frozenset(self.current) if self.complete else frozenset(self.current) & frozenset(self.previous)


def rollout_status(deployment: dict[str, Any], container: str) -> RolloutStatus:
    """Reads a Deployment object as the API server returns it."""
    spec, status, meta = deployment.get("spec", {}), deployment.get("status", {}), deployment.get("metadata", {})
    pod = spec.get("template", {}).get("spec", {})
    tgi = next((c for c in pod.get("containers", []) if c.get("name") == container), {})
    current = tuple(parse_lora_adapters(_env(tgi, "LORA_ADAPTERS")))
    previous = tuple(parse_lora_adapters((meta.get("annotations") or {}).get(PREVIOUS, "")))
    wanted = int(spec.get("replicas", 1))
    complete = (int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 0))
                and int(status.get("updatedReplicas", 0)) == wanted
                and int(status.get("availableReplicas", 0)) == wanted
                and int(status.get("replicas", 0)) == wanted)
    return RolloutStatus(current, previous, complete)


def rollout_patch(current: Sequence[str], held: Sequence[str], container: str, init_container: str,
                  adapter_dir: str) -> dict[str, Any] | None:
    """The strategic-merge patch that makes TGI hold `held`; None when TGI already holds every adapter of it (no
    restart: an adapter that only left the held set is dropped at the next restart, which is bounded anyway,
    since every patch sets exactly a held set)."""
    if set(held) <= set(current):
        return None
    ids = list(dict.fromkeys(held))
    env = [{"name": "LORA_ADAPTERS", "value": lora_adapters_value(ids, adapter_dir)}]
    patch = {"metadata": {"annotations": {PREVIOUS: ",".join(current)}},
             "spec": {"template": {"spec": {"containers": [{"name": container, "env": env}],
                                            "initContainers": [{"name": init_container, "env": env}]}}}}
    return patch


class KubernetesRollout:
    """In-cluster: the pod's service-account token and CA; only the named Deployment is read or patched."""

    def __init__(self, deployment: str, *, base_url: str, namespace: str = "", container: str = "tgi",
                 init_container: str = "adapter-sync", adapter_dir: str = "/adapters",
                 api_url: str = "https://kubernetes.default.svc", ttl_s: float = 5.0,
                 service_account: Path = SERVICE_ACCOUNT) -> None:
        self.deployment, self.base_url = deployment, base_url
        self.service_account = service_account
        self.namespace = namespace or (service_account / "namespace").read_text().strip()
        self.container, self.init_container = container, init_container
        self.adapter_dir, self.ttl_s = adapter_dir, ttl_s
        verify: str | bool = str(service_account / "ca.crt") if api_url.startswith("https:") else False
        self._client = httpx.Client(base_url=api_url, verify=verify, timeout=10.0)
        self.patches = 0
        self._path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{deployment}"
        self._ready: frozenset[str] = frozenset()
        self._at = float("-inf")
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        token = (self.service_account / "token").read_text().strip()  # re-read: projected tokens rotate
        return {"Authorization": f"Bearer {token}"}

    def _get(self) -> dict[str, Any]:
        r = self._client.get(self._path, headers=self._headers())
        r.raise_for_status()
        return r.json()

    def hold(self, adapter_ids: Sequence[str]) -> bool:
        with self._lock:
            status = rollout_status(self._get(), self.container)
            patch = rollout_patch(status.current, adapter_ids, self.container, self.init_container,
                                  self.adapter_dir)
            if patch is None:
                return False
            r = self._client.patch(self._path, json=patch, headers={
                **self._headers(), "Content-Type": "application/strategic-merge-patch+json"})
            r.raise_for_status()
            self._at = float("-inf")
            self.patches += 1
        log.info("TGI rollout started", extra={"adapters": list(adapter_ids), "previous": list(status.current),
                                               "deployment": self.deployment})
        return True

    def ready(self, max_age_s: float | None = None) -> frozenset[str]:
        if time.monotonic() - self._at < (self.ttl_s if max_age_s is None else min(self.ttl_s, max_age_s)):
            return self._ready
        try:
            servable = rollout_status(self._get(), self.container).servable
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("TGI deployment status unknown: keeping the last answer", extra={"error": str(exc)})
            return self._ready
        self._ready, self._at = servable, time.monotonic()
        return servable
