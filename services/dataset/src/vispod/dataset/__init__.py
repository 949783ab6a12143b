"""The training-set builder: SPoRC excerpts → scene prompts → synthesized images → Qwen-VL pairs.

On-disk layout of a dataset folder DIR (the trainer reads exactly this):

    DIR/pairs.jsonl      one training pair per line, Qwen-VL fine-tuning format, image paths relative to DIR:
                         {"id": "<pair id>",
                          "image": ["images/<pair id>/1.png", …, "images/<pair id>/5.png"],
                          "conversations": [
                            {"from": "human", "value": "<image><image><image><image><image>\\n<instruction>"},
                            {"from": "gpt", "value": "Speaker 1: …\\n\\nSpeaker 2: …"}]}
    DIR/images/<pair id>/<k>.png   the 5 images of a pair, k = 1..5 in story order
    DIR/manifest.json    written when a build finishes: sha256 of every image and dialogue, source ids
                         (episode, podcast, mp3 url, turn range), seeds, prompts, prompt template and
                         instruction versions, synthesis settings, `pairs_sha256` (of pairs.jsonl) and
                         `dataset_sha256` (of all that: equal datasets give equal hashes, whatever machine,
                         mode or --n built them); outside the hash: `source_report` (the source reader's
                         malformed-row counts by reason), `excerpt_stats` and `build` (mode, paths)
    DIR/.build/          builder state for resuming (config.json, records/<pair id>.json); not for readers

A pair is committed in this order: its images (each tmp file + rename), its record (tmp + rename),
then its line appended to pairs.jsonl (flushed and fsynced). A rerun after a kill truncates a torn
last line, re-appends pairs whose record survived, and synthesizes only what is missing, so no pair
appears twice and the final files equal those of an uninterrupted build with the same seed.
"""
