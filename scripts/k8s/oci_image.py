"""Writes container images as one docker-archive tar (the format `ctr images import` reads) from layer tars.

No registry is reachable and no image builder is needed: an image is a list of layer tars plus a config. Images in
one archive share layers by digest, so a big layer (torch) is written once for every image that carries it.

  python3 oci_image.py --spec images.json --out - | ctr -n k8s.io images import -
  python3 oci_image.py --name registry.k8s.io/pause:3.10 --file ./pause:/pause --entrypoint /pause --out pause.tar

A spec is {"images": [{"name", "layers": [tar paths], "entrypoint": [...], "cmd": [...], "env": {...},
"user", "workdir"}]}.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def layer_digest(path: Path) -> str:
    """sha256 of the uncompressed layer tar (its diff_id), cached beside it: layers are large and reused."""
    stamp = path.with_name(path.name + ".sha256")
    st = path.stat()
    key = f"{st.st_size} {st.st_mtime_ns}"
    if stamp.exists():
        cached_key, _, digest = stamp.read_text().partition("\n")
        if cached_key == key:
            return digest.strip()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    stamp.write_text(f"{key}\n{digest}\n")
    return digest


def files_layer(files: list[str], out: Path) -> Path:
    """A layer holding single files, given as SRC:DEST (owned by root, mode kept)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for spec in files:
            src, dest = spec.split(":", 1)
            info = tar.gettarinfo(src, arcname=dest.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(src, "rb") as f:
                tar.addfile(info, f)
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_layer(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o644
    with path.open("rb") as f:
        tar.addfile(info, f)


def write_archive(images: list[dict], out: BinaryIO) -> None:
    manifest, written = [], set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for image in images:
            layers = [Path(p) for p in image["layers"]]
            digests = [layer_digest(p) for p in layers]
            for path, digest in zip(layers, digests, strict=True):
                if digest not in written:
                    _add_layer(tar, f"{digest}/layer.tar", path)
                    written.add(digest)
            blob = config_blob(image, digests)
            config_name = hashlib.sha256(blob).hexdigest() + ".json"
            _add_bytes(tar, config_name, blob)
            manifest.append({"Config": config_name, "RepoTags": [image["name"]],
                             "Layers": [f"{d}/layer.tar" for d in digests]})
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())


def config_blob(image: dict, digests: list[str]) -> bytes:
    """The image's config (its sha256 is the config digest containerd records for the imported image)."""
    layers = [Path(p) for p in image["layers"]]
    env = [f"{k}={v}" for k, v in image.get("env", {}).items()]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": image.get("entrypoint"),
            "Cmd": image.get("cmd"),
            "User": image.get("user", ""),
            "WorkingDir": image.get("workdir", "/"),
            "Labels": image.get("labels", {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in digests]},
        "history": [{"created_by": f"vispod scripts/k8s: {p.name}"} for p in layers],
    }
    return json.dumps(config, sort_keys=True).encode()


def config_digest(image: dict) -> str:
    """sha256:<hex> of the image's config, from its layers' (cached) digests."""
    digests = [layer_digest(Path(p)) for p in image["layers"]]
    return "sha256:" + hashlib.sha256(config_blob(image, digests)).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, help="JSON spec of several images")
    ap.add_argument("--name", help="one image: its name (with tag)")
    ap.add_argument("--file", action="append", default=[], help="one image: SRC:DEST file in its only layer")
    ap.add_argument("--entrypoint", help="one image: its entrypoint")
    ap.add_argument("--user", default="")
    ap.add_argument("--out", required=True, help="archive path, or - for stdout")
    args = ap.parse_args(argv)
    if args.spec:
        images = json.loads(args.spec.read_text())["images"]
    elif args.name and args.file:
        with tempfile.TemporaryDirectory() as tmp:
            layer = files_layer(args.file, Path(tmp) / "layer.tar")
            images = [{"name": args.name, "layers": [str(layer)], "user": args.user,
                       "entrypoint": [args.entrypoint] if args.entrypoint else None}]
            emit(images, args.out)
        return 0
    else:
        ap.error("give --spec, or --name with --file")
    emit(images, args.out)
    return 0


def emit(images: list[dict], out: str) -> None:
    if out == "-":
        write_archive(images, sys.stdout.buffer)
    else:
        with open(out, "wb") as f:
            write_archive(images, f)


if __name__ == "__main__":
    sys.exit(main())
