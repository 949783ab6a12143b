"""Fixtures of the dataset builder's tests: small made-up SPoRC corpora in both layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.dataset.sporc_synthetic import make_episodes, write_jsonl_layout, write_parquet_layout


@pytest.fixture
def sporc_jsonl(tmp_path: Path) -> Path:
    return write_jsonl_layout(tmp_path / "sporc-jsonl", make_episodes(8, seed=1))


@pytest.fixture
def sporc_parquet(tmp_path: Path) -> Path:
    return write_parquet_layout(tmp_path / "sporc-parquet", make_episodes(8, seed=1))
