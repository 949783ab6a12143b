"""The broker's JVM class archive: made once by a run that exits normally, mapped by later runs, never partial."""

from pathlib import Path

from vispod.devkit.jvm_class_archive import class_archive


def _setup(tmp_path: Path) -> tuple[str, Path, Path]:
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "kafka.jar").write_bytes(b"x" * 10)
    return str(java), lib, tmp_path / "cache"


def test_first_run_dumps_and_later_runs_map_the_archive(tmp_path):
    java, lib, cache = _setup(tmp_path)
    first = class_archive("broker", java, lib, cache)
    assert first.pending is not None and f"-XX:ArchiveClassesAtExit={first.pending}" in first.flags()
    first.pending.write_bytes(b"archive")          # what the JVM writes at exit
    first.settle(143)                             # the JVM's exit code after SIGTERM
    assert first.path.read_bytes() == b"archive" and not first.pending.exists()
    later = class_archive("broker", java, lib, cache)
    assert later.pending is None and later.flags() == ["-XX:TieredStopAtLevel=1",
                                                       f"-XX:SharedArchiveFile={first.path}"]


def test_a_killed_jvm_leaves_no_partial_archive(tmp_path):
    java, lib, cache = _setup(tmp_path)
    run = class_archive("broker", java, lib, cache)
    assert run.pending is not None
    run.pending.write_bytes(b"half an arch")
    run.settle(-9)                                # SIGKILL mid-dump
    assert not run.pending.exists() and not run.path.exists()
    assert class_archive("broker", java, lib, cache).pending is not None   # the next run tries again


def test_new_jars_make_a_new_archive_and_it_can_be_turned_off(tmp_path, monkeypatch):
    java, lib, cache = _setup(tmp_path)
    before = class_archive("broker", java, lib, cache).path
    (lib / "kafka-clients.jar").write_bytes(b"y")
    assert class_archive("broker", java, lib, cache).path != before
    monkeypatch.setenv("VISPOD_KAFKA_CDS", "0")
    assert class_archive("broker", java, lib, cache).flags() == []
