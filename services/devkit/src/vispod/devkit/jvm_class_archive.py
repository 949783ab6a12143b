"""Faster starts for the local broker's JVMs: a class-data-sharing (CDS) archive of the classes a run loads.

A short-lived JVM spends most of its start loading and verifying classes. JDK 13+ can write the classes a run
loaded into a dynamic archive when it exits (`-XX:ArchiveClassesAtExit`) and map that archive on later starts
(`-XX:SharedArchiveFile`); C1-only compilation (`-XX:TieredStopAtLevel=1`) also starts faster and suits a
broker that lives for a test session or a demo. Measured on this 2-core machine (JDK 17, Kafka 4.1.1, under
load): storage format 6-7 s → 3-4.5 s, broker listening 15-21 s → 8.5-9 s.

The archive is made on the first run (written under a temporary name and moved into place once that JVM has
exited normally, so no run ever maps a partial file) and is keyed by the JVM and the jars: a new JDK or
Kafka version makes a new one. A JVM ignores an archive it cannot use (`-Xshare:auto`, its default), so the worst
case is an ordinary start. VISPOD_KAFKA_CDS=0 turns it off.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

FAST_START = ("-XX:TieredStopAtLevel=1",)


@dataclass(frozen=True)
class ClassArchive:
    path: Path                 # the archive later runs map
    pending: Path | None       # where this run dumps it (None: it exists already, or archives are off)
    enabled: bool = True

    def flags(self) -> list[str]:
        if not self.enabled:
            return []
        if self.pending is not None:
            return [*FAST_START, f"-XX:ArchiveClassesAtExit={self.pending}"]
        return [*FAST_START, f"-XX:SharedArchiveFile={self.path}"]

    def settle(self, returncode: int | None) -> None:
        """After the JVM exited: the archive it dumped becomes the one later runs use, unless the JVM was killed
        (SIGKILL mid-dump leaves a partial file, which is removed)."""
        if self.pending is None or not self.pending.is_file():
            return
        if returncode in (0, 128 + 15, -15):   # a normal exit, or the JVM's own exit on SIGTERM
            os.replace(self.pending, self.path)
        else:
            self.pending.unlink(missing_ok=True)


def class_archive(name: str, java: str, lib: Path, cache: Path) -> ClassArchive:
    """The archive for `name` (e.g. "kafka-broker") run by `java` with the jars in `lib`."""
    if os.environ.get("VISPOD_KAFKA_CDS", "1") == "0":
        return ClassArchive(cache, None, enabled=False)
    real = Path(java).resolve()
    stat = real.stat()
    jars = sorted((p.name, p.stat().st_size) for p in lib.glob("*.jar"))
    key = hashlib.sha256(repr((str(real), stat.st_size, stat.st_mtime_ns, jars)).encode()).hexdigest()[:16]
    folder = cache / "jvm-class-archives"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{key}.jsa"
    if path.is_file():
        return ClassArchive(path, None)
    return ClassArchive(path, folder / f".{name}-{key}.{os.getpid()}-{os.urandom(4).hex()}.jsa")
