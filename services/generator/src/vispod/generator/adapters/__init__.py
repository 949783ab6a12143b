"""LoRA adapters of the generator: fetch + verify published versions, lifecycle and routing, local hot swap.

`AdapterRegistry` decides which verified adapter serves a request; `PeftSwitcher`
(adapters.peft_switch, imports torch/peft lazily) swaps adapters in an in-process model.
"""

from vispod.generator.adapters.registry import AdapterRegistry
from vispod.generator.adapters.verify import AdapterRejected, ArtifactFetcher
from vispod.generator.adapters.version import BASE_MODEL, AdapterUnavailable, AdapterVersion, peft_adapter_name

__all__ = ["BASE_MODEL", "AdapterRegistry", "AdapterRejected", "AdapterUnavailable", "AdapterVersion",
           "ArtifactFetcher", "peft_adapter_name"]
