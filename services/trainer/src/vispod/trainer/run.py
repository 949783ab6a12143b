"""One training run end to end: check the data, train (or resume), write the manifest, store, announce."""

from __future__ import annotations

import logging
import pickle
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vispod.common.artifacts import ArtifactExists, ArtifactStore
from vispod.common.bus import EventPublisher
from vispod.common.logging import configure_logging
from vispod.common.metrics_http import MetricsServer
from vispod.trainer import telemetry as tm
from vispod.trainer.dataset import DatasetError, dataset_hash, load_pairs
from vispod.trainer.distributed import Dist
from vispod.trainer.loop import Interrupted, LoraTrainer, StepCallback, TrainResult, resolve_device
from vispod.trainer.publish import (
    PublishError,
    base_identity,
    check_name,
    code_version,
    next_version,
    publish_adapter,
    text_base_identity,
    write_manifest,
)
from vispod.trainer.settings import TrainerSettings
from vispod.trainer.text_model import is_text_model

log = logging.getLogger(__name__)
PINNED_VERSION = "version.txt"  # the auto-chosen version, reused when a resumed run publishes
T = TypeVar("T")


@dataclass
class RunOutcome:
    result: TrainResult
    manifest: dict[str, Any]
    event: Any | None  # AdapterPublished, when published (on rank 0; None on the other ranks)


def _on_main(d: Dist, fn: Callable[[], T]) -> T | None:
    """Runs fn on rank 0 only; its exception, if any, is raised on every rank (so they all stop, and with the same
    exit code); returns fn's value on rank 0, None elsewhere."""
    value, error = None, None
    if d.is_main:
        try:
            value = fn()
        except Exception as exc:
            error = exc
    try:
        sent: BaseException | None = pickle.loads(pickle.dumps(error))
    except Exception:  # an exception that does not survive pickling travels as its type's name and message
        sent = RuntimeError(f"{type(error).__name__}: {error}")
    shared = d.from_main(sent)
    if error is not None:
        raise error
    if shared is not None:
        raise shared
    return value


def _choose_version(settings: TrainerSettings, store: Any) -> str:
    if settings.adapter_version:
        if settings.adapter_version in store.versions(settings.adapter_name) and not settings.resume:
            raise ArtifactExists(f"{settings.adapter_name}@{settings.adapter_version} is already published; "
                                 "versions are never overwritten")
        return settings.adapter_version
    pinned = settings.output_dir / PINNED_VERSION
    if settings.resume and pinned.is_file():
        return pinned.read_text().strip()
    version = next_version(store, settings.adapter_name, settings.version_scheme)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    pinned.write_text(version)
    return version


def run_training(settings: TrainerSettings, *, on_step: StepCallback | None = None,
                 stop: threading.Event | None = None, publisher: Any | None = None,
                 progress: tm.Progress | None = None, dist: Dist | None = None) -> RunOutcome:
    """publisher: an EventPublisher to announce with; None with settings.publish makes one from settings.kafka.

    Under torchrun every rank runs this: all of them check the data and train; rank 0 alone checks the store,
    writes the manifest and publishes the one adapter, and the others learn its outcome."""
    d = dist or Dist.from_env()
    d.init(resolve_device(settings, d)[0], settings.dist_timeout_s)
    if settings.pairs_dir is None or settings.base_model is None:
        raise ValueError("both --pairs (VISPOD_TRAINER_PAIRS_DIR) and --base (VISPOD_TRAINER_BASE_MODEL) are required")
    text_only = is_text_model(settings.base_model)
    if not text_only and not Path(settings.base_model).is_dir():
        raise FileNotFoundError(f"base model folder {settings.base_model} does not exist")
    check_name(settings.adapter_name, settings.adapter_version)
    pairs = load_pairs(settings.pairs_dir, settings.images_per_pair)  # every pair checked before any GPU time
    data_sha = dataset_hash(settings.pairs_dir, pairs)
    base = (text_base_identity(settings.base_model, settings.base_model_id) if text_only
            else base_identity(settings.base_model, settings.base_model_id, settings.base_model_revision))
    if base.random_weights:
        log.warning("base model has RANDOM weights: the adapter is for tests only", extra={"base": base.model_id})
    store = version = signer = None
    if settings.publish:  # the store and the signing key are checked before any GPU time
        store, signer, version = _on_main(d, lambda: _open_store(settings)) or (None, None, None)
    trainer = LoraTrainer(settings, pairs, dataset_sha256=data_sha, base_model_id=base.model_id,
                          base_revision=base.revision, progress=progress, dist=d)
    result = trainer.train(on_step=on_step, stop=stop, resume=settings.resume)
    published = _on_main(d, lambda: _write_and_publish(settings, trainer, result, base, data_sha, store, signer,
                                                       version, publisher))
    if published is None:  # not rank 0: the job's one adapter is rank 0's
        return RunOutcome(result=result, manifest={}, event=None)
    manifest, event = published
    return RunOutcome(result=result, manifest=manifest, event=event)


def _open_store(settings: TrainerSettings) -> tuple[Any, Any, str]:
    signer = None
    if settings.adapter_store.url:
        store, signer = settings.adapter_store.open(), settings.adapter_store.signer()
    else:
        log.warning("no adapter store configured: publishing an UNSIGNED local folder (local use only)")
        store = ArtifactStore(settings.artifact_root)
    return store, signer, _choose_version(settings, store)


def _write_and_publish(settings: TrainerSettings, trainer: LoraTrainer, result: TrainResult, base: Any,
                       data_sha: str, store: Any, signer: Any, version: str | None,
                       publisher: Any | None) -> tuple[dict[str, Any], Any]:
    version = version or settings.adapter_version or "unpublished"
    manifest = write_manifest(result.adapter_dir, name=settings.adapter_name, version=version,
                              base=base, dataset_sha256=data_sha, hyperparameters=settings.hyperparameters(),
                              metrics=result.metrics, code=code_version(settings.code_version),
                              target_modules=list(settings.lora_target_modules))
    event = None
    if settings.publish:
        own = publisher is None
        if own:
            publisher = EventPublisher(settings.kafka, source=settings.service_name)
        try:
            event = publish_adapter(store=store, publisher=publisher, adapter_dir=result.adapter_dir, manifest=manifest,
                                    signer=signer)
            tm.PUBLISHED.labels("ok").inc()
        except Exception:
            tm.PUBLISHED.labels("error").inc()
            raise
        finally:
            if own:
                publisher.close()
        trainer.progress.emit("published", adapter_id=event.adapter_id, artifact_uri=event.artifact_uri,
                              files=dict(event.file_sha256))
    trainer.progress.emit("done", adapter_id=manifest["adapter_id"], published=event is not None,
                          metrics=result.metrics)
    return manifest, event


EXIT_OK, EXIT_BAD_INPUT, EXIT_NOT_PUBLISHABLE, EXIT_INTERRUPTED = 0, 2, 3, 143


def main(settings: TrainerSettings) -> int:
    """The Job's entry: metrics endpoint, SIGTERM → checkpoint and exit 143 (the Job retries with resume).

    Exit codes: 0 done; 2 bad dataset or inputs and 3 version already published (retrying cannot help: a Job's
    podFailurePolicy should FailJob on them); 143 interrupted after a checkpoint; 1 anything else (retry).
    """
    configure_logging(settings.service_name, settings.log_level)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = None
    d = Dist.from_env()
    if settings.serve_metrics and d.is_main:  # rank 0 publishes the job's metrics (every rank's throughput included)
        server = MetricsServer(settings.metrics_host, settings.metrics_port, ready=lambda: True)
        server.start()
    try:
        outcome = run_training(settings, stop=stop, dist=d)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        log.error("bad input: %s", exc)
        return EXIT_BAD_INPUT
    except (ArtifactExists, PublishError) as exc:
        log.error("not publishable: %s", exc)
        return EXIT_NOT_PUBLISHABLE
    except Interrupted as exc:
        log.warning("%s", exc)
        return EXIT_INTERRUPTED
    finally:
        d.close()
        if server is not None:
            stop.wait(settings.metrics_linger_s)  # SIGTERM cuts the wait short
            server.stop()
    log.info("training done", extra={"adapter_id": outcome.event.adapter_id if outcome.event else None,
                                     "metrics": outcome.result.metrics})
    return 0
