"""The runtime (vispod-common) stands alone: it imports no service, finds nothing through the repository
layout, and images carry it plus one service, never the developer kit or the dataset builder."""

from __future__ import annotations

import re
from pathlib import Path

from import_graph import imported_modules

import vispod.common

REPO = Path(__file__).resolve().parents[2]
# The services built as images, as the Makefile lists them.
IMAGE_SERVICES = re.search(r"^IMAGE_SERVICES \?= (.+)$", (REPO / "Makefile").read_text(encoding="utf-8"),
                           re.M).group(1).split()  # type: ignore[union-attr]
RUNTIME = Path(vispod.common.__file__).parent
RUNTIME_PACKAGES = {"common", "v1"}  # vispod.v1: the generated stubs, shipped in vispod-common
NOT_IN_IMAGES = {"devkit", "dataset", "evaluation"}
SERVICES = ("synth", "generator", "metrics", "judge", "trainer", "gate", "voice")


def _vispod_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "vispod" and len(parts) > 1 else None


def _offenders(root: Path, allowed) -> list[str]:  # type: ignore[no-untyped-def]
    """`root` is a package folder src/vispod/<name>; `allowed(name)` says which vispod packages it may import."""
    src = root.parent.parent
    return [f"{path.relative_to(src)}:{line} imports {module}"
            for path in sorted(root.rglob("*.py"))
            for line, module in imported_modules(path, src)
            if (pkg := _vispod_package(module)) is not None and not allowed(pkg)]


def test_the_import_scan_sees_a_service_import(tmp_path: Path) -> None:
    package = tmp_path / "vispod" / "common"
    package.mkdir(parents=True)
    (package / "probe.py").write_text("import os\nfrom vispod.common import bus\nfrom vispod import gate\n\n\n"
                                      "def f():\n    from vispod.generator.service import build\n"
                                      "    from . import events\n    from ..judge import cli\n")
    offenders = _offenders(package, lambda pkg: pkg in RUNTIME_PACKAGES)
    assert [o.split(" imports ")[1] for o in offenders] == ["vispod.gate", "vispod.generator.service", "vispod.judge"]


def test_no_runtime_module_imports_a_service_package() -> None:
    assert RUNTIME.is_dir() and any(RUNTIME.rglob("bus.py"))
    assert _offenders(RUNTIME, lambda pkg: pkg in RUNTIME_PACKAGES) == []


def test_no_service_imports_the_developer_kit_the_dataset_builder_or_the_evaluation_harness() -> None:
    """Images carry the runtime and one service: a service that imported these would fail in its image."""
    offenders = []
    for service in SERVICES:
        root = REPO / "services" / service / "src" / "vispod" / service
        assert root.is_dir(), root
        offenders += _offenders(root, lambda pkg: pkg not in NOT_IN_IMAGES)
    assert offenders == []


def test_each_image_service_imports_only_what_its_image_installs() -> None:
    """An image installs vispod-common, its service and (generator) perception, as the Dockerfile says: an import of
    any other vispod package, even inside a function, fails in that image (the gate once held `vispod eval`, which
    started the metrics and judge services in-process)."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    extra = {svc: set(re.findall(r"\./services/(\w+)", line))
             for svc, line in re.findall(r'(\w+)\) with="([^"]*)"', dockerfile)}
    assert extra == {"generator": {"perception"}}
    offenders = []
    for service in IMAGE_SERVICES:
        root = REPO / "services" / service / "src" / "vispod" / service
        installed = RUNTIME_PACKAGES | {service} | extra.get(service, set())
        offenders += _offenders(root, lambda pkg, installed=installed: pkg in installed)
    assert offenders == []


def test_the_runtime_finds_nothing_through_the_repository_layout() -> None:
    pattern = re.compile(r"parents\[\d+\]|REPO_ROOT|\.\./")
    offenders = [f"{path.name}:{n}: {line.strip()}" for path in sorted(RUNTIME.rglob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_the_runtime_depends_on_no_other_vispod_package() -> None:
    pyproject = (REPO / "services" / "common" / "pyproject.toml").read_text(encoding="utf-8")
    deps = re.search(r"^dependencies = \[(.*?)\]", pyproject, re.S | re.M)
    assert deps is not None
    assert re.findall(r"vispod-[a-z]+", deps.group(1)) == []


def test_images_copy_the_runtime_and_one_service_only() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    copies = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M)
    # perception is a library (no service of its own): copied, installed only for the services that need it.
    assert sorted(copies) == ["protos/", "services/${SERVICE}/", "services/common/", "services/perception/"]
    users = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml")
                   if p.parent.name in IMAGE_SERVICES and "vispod-perception" in p.read_text(encoding="utf-8"))
    installed_for = re.findall(r'(\w+)\) with="\./services/perception"', dockerfile)
    assert users == installed_for == ["generator"]
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {f"services/{name}" for name in NOT_IN_IMAGES} <= set(ignored)
