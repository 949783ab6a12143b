"""The slice of the Kubernetes API a TGI rollout uses, on a real HTTP server: GET and strategic-merge PATCH of one
Deployment, bearer token checked. A patch that changes TGI's pod template "restarts" TGI: the engine it fronts is
given the new LORA_ADAPTERS list and the rollout completes (every replica updated and available)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from service_fixtures import HttpServer, JsonHandler

from vispod.generator.backends.tgi_rollout import parse_lora_adapters

TOKEN = "sa-token-of-the-generator"


def _merge_named(items: list[dict], patches: list[dict]) -> list[dict]:
    """Strategic merge of lists keyed by `name` (containers, env)."""
    out = [copy.deepcopy(i) for i in items]
    for p in patches:
        found = next((i for i in out if i.get("name") == p.get("name")), None)
        if found is None:
            out.append(copy.deepcopy(p))
            continue
        for key, value in p.items():
            found[key] = _merge_named(found.get(key, []), value) if key == "env" else value
    return out


class FakeDeploymentApi:
    def __init__(self, namespace: str, name: str, on_restart: Callable[[list[str]], None], replicas: int = 2) -> None:
        self.path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        self.on_restart = on_restart
        self.restarts: list[list[str]] = []     # LORA_ADAPTERS after each restart
        self.lock = threading.Lock()
        env = [{"name": "LORA_ADAPTERS", "value": ""}]
        self.deployment: dict[str, Any] = {
            "metadata": {"name": name, "generation": 1, "annotations": {}},
            "spec": {"replicas": replicas, "template": {"spec": {
                "containers": [{"name": "tgi", "image": "tgi:3", "env": copy.deepcopy(env)}],
                "initContainers": [{"name": "adapter-sync", "env": copy.deepcopy(env)}]}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                       "availableReplicas": replicas}}
        self.server = HttpServer(self._handler())
        self.url = self.server.url

    def _patch(self, patch: dict[str, Any]) -> None:
        d = self.deployment
        d["metadata"]["annotations"].update(patch.get("metadata", {}).get("annotations", {}))
        pod, change = d["spec"]["template"]["spec"], patch.get("spec", {}).get("template", {}).get("spec", {})
        for key in ("containers", "initContainers"):
            if key in change:
                pod[key] = _merge_named(pod[key], change[key])
        d["metadata"]["generation"] += 1
        tgi = next(c for c in pod["containers"] if c["name"] == "tgi")
        adapters = parse_lora_adapters(next(e["value"] for e in tgi["env"] if e["name"] == "LORA_ADAPTERS"))
        self.on_restart(adapters)   # the new pods start with these adapters, then the old ones go
        self.restarts.append(adapters)
        d["status"]["observedGeneration"] = d["metadata"]["generation"]

    def _handler(self) -> type[JsonHandler]:
        api = self

        class Handler(JsonHandler):
            def _allowed(self) -> bool:
                if self.path != api.path:
                    self.send(404, {"kind": "Status", "code": 404})
                    return False
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send(401, {"kind": "Status", "code": 401})
                    return False
                return True

            def do_GET(self) -> None:
                if self._allowed():
                    with api.lock:
                        self.send(200, api.deployment)

            def do_PATCH(self) -> None:
                if not self._allowed():
                    return
                if self.headers.get("Content-Type") != "application/strategic-merge-patch+json":
                    return self.send(415, {"kind": "Status", "code": 415})
                body = self.read_json()
                with api.lock:
                    api._patch(body)
                    self.send(200, api.deployment)

        return Handler

    def stop(self) -> None:
        self.server.stop()
