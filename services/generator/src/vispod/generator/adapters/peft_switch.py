"""Hot-swapping LoRA adapters in one in-process model, without a restart and without a torn request.

One model can have one adapter (or none) applied at a time. `using(version)` admits requests for
the adapter currently applied together; a request for another adapter waits until those in flight
have finished, then the switch happens with nobody inside. Waiters are admitted in arrival order,
so a stream of requests for the current adapter cannot starve a swap. Loading (the first time an
adapter is used) also happens in that exclusive moment: it mutates the model's modules.

    switcher = PeftSwitcher(model)
    with switcher.using(registry.resolve("", key)) as m:   # None: the base model
        m.generate(...)                                      # the whole call (or stream) inside
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vispod.generator.adapters import metrics
from vispod.generator.adapters.version import AdapterVersion, peft_adapter_name

log = logging.getLogger(__name__)

_UNKNOWN = object()   # applied state unknown (after an unload): re-apply on next entry


class PeftSwitcher:
    def __init__(self, base_model: Any, max_loaded: int | None = None) -> None:
        """base_model: a transformers model (it becomes wrapped in a PeftModel on the first adapter).
        max_loaded: adapters kept in memory; the least recently used beyond it are unloaded."""
        self._model = base_model
        self.max_loaded = max_loaded
        self._cond = threading.Condition()
        self._queue: deque[tuple[object, object]] = deque()   # (ticket, key) in arrival order
        self._holders = 0
        self._applied: object = None          # adapter id applied to the model; None = base
        self._loaded: OrderedDict[str, str] = OrderedDict()   # adapter id -> peft name, LRU order
        self._disabled: Any = None            # the open `disable_adapter()` context while serving the base
        self._local = threading.local()
        self.swaps = 0                        # switches of the applied adapter so far

    @property
    def model(self) -> Any:
        """The current model object (a PeftModel once an adapter was loaded). Use it inside `using`."""
        return self._model

    @property
    def loaded(self) -> list[str]:
        with self._cond:
            return list(self._loaded)

    @property
    def applied(self) -> str | None:
        with self._cond:
            return self._applied if isinstance(self._applied, str) else None

    @property
    def switched(self) -> bool:
        """Whether this thread's latest `using` entry had to switch the adapter (metrics, benchmarks)."""
        return getattr(self._local, "switched", False)

    @contextmanager
    def using(self, version: AdapterVersion | None) -> Iterator[Any]:
        """Holds `version` (None: base model) applied for the duration of the block; yields the model."""
        key = version.adapter_id if version is not None else None
        started = time.monotonic()
        self._enter(key, version)
        metrics.SWAP_SECONDS.observe(time.monotonic() - started)
        try:
            yield self._model
        finally:
            with self._cond:
                self._holders -= 1
                self._cond.notify_all()

    def unload(self, adapter_id: str) -> bool:
        """Frees a retired adapter (waits for requests in flight); True if it was loaded."""
        with self._exclusive():
            if adapter_id not in self._loaded:
                return False
            self._delete(adapter_id)
            return True

    def retain(self, adapter_ids: set[str]) -> list[str]:
        """Unloads every loaded adapter not in `adapter_ids`; returns those unloaded."""
        with self._exclusive():
            dropped = [a for a in self._loaded if a not in adapter_ids]
            for adapter_id in dropped:
                self._delete(adapter_id)
            return dropped

    # --- admission ------------------------------------------------------------------------
    def _can_join(self, ticket: object, key: object) -> bool:
        """Join the holders of the applied adapter if nobody ahead in the queue wants another one."""
        if self._holders == 0 or key != self._applied:
            return False
        for t, k in self._queue:
            if t is ticket:
                return True
            if k != key:
                return False
        return False

    def _enter(self, key: str | None, version: AdapterVersion | None) -> None:
        ticket = object()
        self._local.switched = False
        with self._cond:
            self._queue.append((ticket, key))
            try:
                while True:
                    if self._can_join(ticket, key):
                        break
                    if self._holders == 0 and self._queue[0][0] is ticket:
                        self._local.switched = self._apply(key, version)   # nobody inside: safe to mutate
                        break
                    self._cond.wait()
            finally:
                self._queue.remove(next(e for e in self._queue if e[0] is ticket))
                self._cond.notify_all()
            self._holders += 1

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        ticket = object()
        with self._cond:
            self._queue.append((ticket, ticket))   # a key nobody shares
            try:
                while not (self._holders == 0 and self._queue[0][0] is ticket):
                    self._cond.wait()
                yield
            finally:
                self._queue.remove(next(e for e in self._queue if e[0] is ticket))
                self._cond.notify_all()

    # --- model surgery (only with nobody inside) -----------------------------------------------
    def _apply(self, key: str | None, version: AdapterVersion | None) -> bool:
        if key == self._applied:
            return False
        self._applied = _UNKNOWN   # until the switch completes: a failed load must not leave a wrong label
        if key is None:
            if self._loaded and self._disabled is None:
                self._disabled = self._model.disable_adapter()
                self._disabled.__enter__()
        else:
            assert version is not None
            self._enable()
            name = self._ensure_loaded(version)
            self._model.set_adapter(name)
        log.debug("adapter applied", extra={"adapter_id": key or "base"})
        self._applied = key
        self.swaps += 1
        return True

    def _enable(self) -> None:
        if self._disabled is not None:
            disabled, self._disabled = self._disabled, None
            disabled.__exit__(None, None, None)

    def _ensure_loaded(self, version: AdapterVersion) -> str:
        adapter_id = version.adapter_id
        if adapter_id in self._loaded:
            self._loaded.move_to_end(adapter_id)
            return self._loaded[adapter_id]
        from peft import PeftModel  # heavy import, only where a local model is served

        name = peft_adapter_name(adapter_id)
        started = time.monotonic()
        if isinstance(self._model, PeftModel):
            self._model.load_adapter(str(version.local_path), adapter_name=name, is_trainable=False)
        else:
            self._model = PeftModel.from_pretrained(self._model, str(version.local_path), adapter_name=name,
                                                    is_trainable=False)
        self._model.eval()
        self._loaded[adapter_id] = name
        log.info("adapter loaded", extra={"adapter_id": adapter_id, "seconds": round(time.monotonic() - started, 3)})
        if self.max_loaded is not None:
            for old in [a for a in self._loaded if a != adapter_id][: max(0, len(self._loaded) - self.max_loaded)]:
                self._delete(old)
        return name

    def _delete(self, adapter_id: str) -> None:
        name = self._loaded.pop(adapter_id)
        if not self._loaded:
            # peft keeps no model without an adapter: unwrap to the plain base model instead.
            self._enable()
            self._model = self._model.unload()
            self._applied = None
        else:
            if self._applied == adapter_id:
                self._applied = _UNKNOWN
            was_disabled = self._disabled is not None
            self._enable()
            self._model.delete_adapter(name)
            if was_disabled:
                self._applied = _UNKNOWN
        log.info("adapter unloaded", extra={"adapter_id": adapter_id})
