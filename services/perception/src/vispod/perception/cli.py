"""`vispod perception`: what the perception models see in photos, and their calibration.

    vispod perception PHOTO_OR_FOLDER …     # facts per photo as JSON lines (objects, text, labels, models)
    vispod perception --calibrate           # re-measure calibration.json on the shared dataset's non-evaluation stories
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from PIL import Image

from vispod.common.settings import DatasetSettings
from vispod.common.story_folder import IMAGE_MIME, natural_key
from vispod.perception import calibrate
from vispod.perception.perceiver import PhotoPerceiver
from vispod.perception.settings import CALIBRATION_FILE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perception", help="facts perception finds in photos (real weights), or its calibration")
    p.add_argument("paths", nargs="*", type=Path, help="photos or folders of photos")
    p.add_argument("--calibrate", action="store_true", help="measure the thresholds and the detector's noise")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name(CALIBRATION_FILE),
                   help="where --calibrate writes (default: the package's calibration.json)")
    p.set_defaults(func=run)


def photos(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_MIME),
                            key=lambda p: natural_key(p.name))
        else:
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    if args.calibrate:
        dataset = DatasetSettings().vist_podcast_50
        if not dataset.is_dir():
            print(f"{dataset} not found: set VISPOD_DATASETS_ROOT", file=sys.stderr)
            return 2
        result = calibrate.main(dataset, args.out)
        print(f"objects ≥ {result['objects']['min_score']}, labels ≥ {result['labels']['min_score']} "
              f"({result['data']['photos']} photos) -> {args.out}")
        return 0
    if not args.paths:
        print("give photos or folders, or --calibrate", file=sys.stderr)
        return 2
    perceiver = PhotoPerceiver()
    for path in photos(args.paths):
        with Image.open(path) as img:
            facts = perceiver.perceive(img.convert("RGB"))
        print(json.dumps({"photo": str(path), **MessageToDict(facts, preserving_proto_field_name=True)}))
    return 0
