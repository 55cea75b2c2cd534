"""Llama Guard 3 category loader: real file counts, the deterministic split, errors.

The prompts are offensive: no assertion message or output here shows their text.
"""

import json
from pathlib import Path

import datasets
import pytest

from lm_eval_mlc.data import DataValidationError
from lm_eval_mlc.data.content_safety import CATEGORIES, label_names, load_content_safety, split_of


@pytest.fixture(scope="module")
def real(data_dir: Path) -> datasets.DatasetDict:
    return load_content_safety(data_dir=str(data_dir))


def test_real_counts(real: datasets.DatasetDict) -> None:
    sizes = {name: len(split) for name, split in real.items()}
    assert sum(sizes.values()) == 2295
    assert sizes == {"train": 211, "validation": 259, "test": 1825}
    labels = [doc_labels for split in real.values() for doc_labels in split["labels"]]
    # PROVENANCE.md: per-category counts and 1786 rows with 2 categories, 509 with 3.
    assert {name: sum(name in ls for ls in labels) for name in CATEGORIES} == {
        "S1": 369, "S2": 389, "S3": 272, "S4": 349, "S5": 229, "S6": 280, "S7": 381,
        "S8": 387, "S9": 312, "S10": 477, "S11": 434, "S12": 336, "S13": 491, "S14": 393,
    }  # fmt: skip
    assert sorted(map(len, labels)) == [2] * 1786 + [3] * 509


def test_real_rows_and_prefix_labels(real: datasets.DatasetDict) -> None:
    docs = {doc["id"]: doc for split in real.values() for doc in split}
    # Line 1: ["S4", "S10"]; line 3: ["S1", "S9", "S10"]; line 172: ["S1", "S10"]. "S1" is a
    # prefix of "S10": both stay distinct labels, in numeric (label-set) order.
    assert docs["lg3-1"]["labels"] == ["S4", "S10"]
    assert docs["lg3-3"]["labels"] == ["S1", "S9", "S10"]
    assert docs["lg3-172"]["labels"] == ["S1", "S10"]
    assert docs["lg3-1"]["label_descriptions"][0] == "Violent Crimes"
    for name, split in real.items():
        assert all(split_of(text) == name for text in split["text"]), name


def test_label_names() -> None:
    assert label_names() == [f"S{i}" for i in range(1, 15)]
    assert CATEGORIES["S14"] == "Code Interpreter Abuse"


def test_split_is_by_text() -> None:
    # SHA-256 mod 10 of the text; a duplicated text always lands in one split.
    assert split_of("a") == split_of("a")
    buckets = {split_of(f"text {i}") for i in range(100)}
    assert buckets == {"train", "validation", "test"}


def test_bad_rows_report_every_problem(tmp_path: Path) -> None:
    folder = tmp_path / "content_safety_llamaguard3"
    folder.mkdir()
    path = folder / "content_moderation_lm3.jsonl"
    rows = [
        json.dumps({"unsafe_query": "ok", "llama_guard_3_categories": ["S10", "S1"]}),
        "{not json",
        json.dumps({"unsafe_query": "", "llama_guard_3_categories": ["S1"]}),
        json.dumps({"unsafe_query": "x", "llama_guard_3_categories": ["S15", "s1"]}),
        json.dumps({"unsafe_query": "y", "llama_guard_3_categories": "S1"}),
        json.dumps({"unsafe_query": "z", "llama_guard_3_categories": ["S2", "S2"]}),
    ]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataValidationError) as info:
        load_content_safety(data_dir=str(tmp_path))
    assert [(p.row, p.field) for p in info.value.problems] == [
        (2, "json"),
        (3, "unsafe_query"),
        (4, "llama_guard_3_categories"),
        (5, "llama_guard_3_categories"),
        (6, "llama_guard_3_categories"),
    ]
    assert "unknown categories ['S15', 's1']; expected S1..S14" in str(info.value)
    path.write_text(rows[0] + "\n")
    (doc,) = [d for split in load_content_safety(data_dir=str(folder)).values() for d in split]
    assert doc["labels"] == ["S1", "S10"] and doc["id"] == "lg3-1"
