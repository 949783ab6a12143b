"""Benchmark of perception -> bench-results/perception.json.

Each model's time a photo (median over photos, each photo timed `--repeats` times after one warm-up pass),
the three together, and the models' load time, on real photos: the example story the project makes
(scikit-image's photos) and, when ../shared/datasets is present, the first complete VIST stories' photos.
Target: the three models together <= 1 s a photo (median) on 2 cores.

Usage: python benchmarks/bench_perception.py [--vist-stories 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from vispod.common.settings import DatasetSettings
from vispod.common.story_folder import iter_stories
from vispod.devkit.checkout import use_shared_datasets
from vispod.devkit.example_story import write_example_story
from vispod.perception.classifier import ImageClassifier
from vispod.perception.detector import ObjectDetector
from vispod.perception.ocr import TextReader
from vispod.perception.settings import PerceptionSettings

REPO = Path(__file__).resolve().parents[1]


def photos(vist_stories: int, tmp: Path) -> list[Path]:
    found = sorted(write_example_story(tmp / "example").glob("image_*.jpg"))
    use_shared_datasets()
    vist = DatasetSettings().vist_podcast_50
    if vist.is_dir():
        complete = [s for s in iter_stories(vist, "story_*") if s.meta.get("complete")][:vist_stories]
        found += [p for s in complete for p in s.images]
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vist-stories", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    s = PerceptionSettings()
    with tempfile.TemporaryDirectory() as tmp:
        paths = photos(args.vist_stories, Path(tmp))
        images = []
        for path in paths:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        loads, runners = {}, []
        for make in (lambda: ObjectDetector(s.object_min_score, s.max_objects),
                     lambda: TextReader(s.text_min_score, s.max_texts, s.threads),
                     lambda: ImageClassifier(s.label_min_score, s.max_labels)):
            started = time.perf_counter()
            runner = make()
            loads[runner.model.name] = round(time.perf_counter() - started, 3)
            runners.append(runner)
        per_model: dict[str, list[float]] = {r.model.name: [] for r in runners}
        totals = []
        for img in images:
            for r in runners:
                r(img)   # warm-up
            together = 0.0
            for r in runners:
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    r(img)
                    times.append(time.perf_counter() - started)
                per_model[r.model.name].append(statistics.median(times))
                together += statistics.median(times)
            totals.append(together)
    result = {
        "benchmark": "perception", "photos": len(images), "repeats": args.repeats,
        "sources": {"example story (scikit-image)": 5, "vist-podcast-50": len(images) - 5},
        "median_s_per_photo": {name: round(statistics.median(v), 4) for name, v in per_model.items()},
        "p90_s_per_photo": {name: round(sorted(v)[int(0.9 * (len(v) - 1))], 4) for name, v in per_model.items()},
        "all_three_median_s_per_photo": round(statistics.median(totals), 4),
        "target_s_per_photo": 1.0, "meets_target": statistics.median(totals) <= 1.0,
        "load_s": loads, "cores": os.cpu_count(), "machine": platform.machine(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    out = REPO / "bench-results" / "perception.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
