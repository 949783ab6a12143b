"""The engine-side delivery rules that need no model: TGI's rollout status and patch, the adapter list of
TGI's init container, and an unreachable TGI reported as unavailable (never served by anything else)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.adaptersync.sync import lora_adapter_ids
from vispod.common.http_retry import RetryPolicy
from vispod.devkit.local_kafka import free_port
from vispod.generator.adapters import AdapterVersion
from vispod.generator.backends.base import BackendUnavailable, GenerationInput
from vispod.generator.backends.tgi import TGIBackend
from vispod.generator.backends.tgi_rollout import (
    PREVIOUS,
    lora_adapters_value,
    parse_lora_adapters,
    rollout_patch,
    rollout_status,
)


def deployment(adapters: list[str], previous: list[str], *, generation: int, observed: int, replicas: int = 2,
               updated: int = 2, available: int = 2, total: int = 2) -> dict:
    """A Deployment object the way the API server returns it."""
    env = [{"name": "MODEL_ID", "value": "m"},
           {"name": "LORA_ADAPTERS", "value": lora_adapters_value(adapters, "/adapters")}]
    return {"metadata": {"name": "tgi", "generation": generation, "annotations": {PREVIOUS: ",".join(previous)}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "tgi", "env": env}]}}},
            "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                       "availableReplicas": available}}


def test_previous_adapters_stay_routable_until_every_replica_has_the_new_list() -> None:
    rolling = rollout_status(deployment(["pod@1", "pod@2"], ["pod@1"], generation=5, observed=5, updated=1,
                                        total=3), "tgi")
    assert not rolling.complete and rolling.servable == {"pod@1"}
    unobserved = rollout_status(deployment(["pod@1", "pod@2"], ["pod@1"], generation=6, observed=5), "tgi")
    assert unobserved.servable == {"pod@1"}
    unavailable = rollout_status(deployment(["pod@1", "pod@2"], ["pod@1"], generation=5, observed=5, available=1),
                                 "tgi")
    assert unavailable.servable == {"pod@1"}
    done = rollout_status(deployment(["pod@1", "pod@2"], ["pod@1"], generation=5, observed=5), "tgi")
    assert done.complete and done.servable == {"pod@1", "pod@2"}


def test_patch_sets_both_containers_to_the_held_set_and_only_when_it_grows() -> None:
    ids = ["pod@2", "pod@3", "pod@4"]
    patch = rollout_patch(["pod@1", "pod@2", "pod@3"], ids, "tgi", "adapter-sync", "/adapters")
    assert patch is not None
    pod = patch["spec"]["template"]["spec"]
    for c in pod["containers"] + pod["initContainers"]:
        assert c["env"] == [{"name": "LORA_ADAPTERS",
                             "value": "pod@2=/adapters/pod/2,pod@3=/adapters/pod/3,pod@4=/adapters/pod/4"}]
    assert {c["name"] for c in pod["containers"]} == {"tgi"} and pod["initContainers"][0]["name"] == "adapter-sync"
    assert patch["metadata"]["annotations"][PREVIOUS] == "pod@1,pod@2,pod@3"
    assert parse_lora_adapters(pod["containers"][0]["env"][0]["value"]) == ids
    # The init container reads the same variable: the versions it must fetch and verify.
    assert lora_adapter_ids(pod["initContainers"][0]["env"][0]["value"]) == [("pod", "2"), ("pod", "3"), ("pod", "4")]
    with pytest.raises(ValueError):
        lora_adapter_ids("pod=/adapters/pod")
    # No restart when TGI holds every adapter of the set already (one that only left it goes at the next restart).
    assert rollout_patch(["pod@1", "pod@2", "pod@3"], ["pod@3", "pod@1"], "tgi", "adapter-sync", "/adapters") is None


def test_unreachable_tgi_is_unavailable() -> None:
    backend = TGIBackend(f"http://127.0.0.1:{free_port()}", ["pod@1"], retry=RetryPolicy(1, 0.01, 0.05))
    inp = GenerationInput(system="s", user="u", adapter=AdapterVersion("pod@1", Path("/x"), "b"))
    with pytest.raises(BackendUnavailable):
        list(backend.stream(inp))
