"""SemEval-2018 E-c loader: real files, the Hub path (mocked) and error reporting."""

import shutil
from pathlib import Path

import datasets
import pytest

from lm_eval_mlc.data import DataValidationError, load_semeval2018_ec
from lm_eval_mlc.data.semeval import EMOTIONS, HUB_CONFIG, HUB_PATH, label_names

HEADER = "ID\tTweet\t" + "\t".join(EMOTIONS)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected datasets.load_dataset{args}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


@pytest.fixture(scope="module")
def real(data_dir: Path) -> datasets.DatasetDict:
    return load_semeval2018_ec(data_dir=str(data_dir))


def test_real_row_and_label_counts(real: datasets.DatasetDict) -> None:
    assert {name: len(split) for name, split in real.items()} == {
        "train": 6838,
        "validation": 886,
        "test": 3259,
    }
    assert real["test"].column_names == ["id", "text", "labels", "annotator_probs", "n_raters"]
    # PROVENANCE.md: test positives per emotion and 75 all-zero (neutral) rows; train 204.
    test_labels = real["test"]["labels"]
    counts = {name: sum(name in labels for labels in test_labels) for name in EMOTIONS}
    assert counts == {
        "anger": 1101, "anticipation": 425, "disgust": 1099, "fear": 485, "joy": 1442,
        "love": 516, "optimism": 1143, "pessimism": 375, "sadness": 960, "surprise": 170,
        "trust": 153,
    }  # fmt: skip
    assert sum(not labels for labels in test_labels) == 75
    assert sum(not labels for labels in real["train"]["labels"]) == 204
    assert set(real["train"]["n_raters"]) == {0}


def test_real_hand_checked_rows(real: datasets.DatasetDict) -> None:
    train = {doc["id"]: doc for doc in real["train"]}
    # train.txt line 2: 0 1 0 0 0 0 1 0 0 0 1; CRLF line end, so the last cell is "1\r".
    assert train["2017-En-21441"]["labels"] == ["anticipation", "optimism", "trust"]
    # line 3: the tweet ends without a trailing \r (it sits before the label cells).
    doc = train["2017-En-31535"]
    assert doc["text"] == "Whatever you decide to do make sure it makes you #happy."
    assert doc["labels"] == ["joy", "love", "optimism"]
    # test-gold (LF) line 2: 1 1 0 0 0 0 1 0 0 0 1
    assert real["test"][0]["id"] == "2018-En-01559"
    assert real["test"][0]["labels"] == ["anger", "anticipation", "optimism", "trust"]
    assert not any("\r" in text for text in real["validation"]["text"])


def test_real_paper_subset(data_dir: Path) -> None:
    dd = load_semeval2018_ec(data_dir=str(data_dir), id_subset="main_test_set")
    listed = (data_dir / "semeval2018_ec/paper_id_lists/main_test_set.txt").read_text().split()
    assert len(listed) == 185 and dd["test"]["id"] == listed
    # dev.txt lines 573 and 759: sadness+surprise, and joy
    assert dd["test"][0]["labels"] == ["sadness", "surprise"]
    assert dd["test"][1]["labels"] == ["joy"]
    assert len(dd["validation"]) == 886 - 185
    assert not set(dd["validation"]["id"]) & set(listed)
    assert len(dd["train"]) == 6838


def write_dir(tmp_path: Path, rows: dict[str, list[str]]) -> Path:
    folder = tmp_path / "semeval2018_ec"
    folder.mkdir()
    names = {"train": "train", "validation": "dev", "test": "test-gold"}
    for split, lines in rows.items():
        path = folder / f"2018-E-c-En-{names[split]}.txt"
        path.write_text("\r\n".join([HEADER, *lines]) + "\r\n", encoding="utf-8")
    return folder


ZEROS = "\t".join("0" * 11)
GOOD = {
    "train": [f"t1\tfirst tweet\t{ZEROS}", "t2\tsecond\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t1"],
    "validation": [f"d1\ta dev tweet\t{ZEROS}"],
    "test": ["g1\tgold tweet\t0\t0\t0\t0\t1\t1\t0\t0\t0\t0\t0"],
}


def test_small_dir_parent_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_dir(tmp_path, GOOD)
    dd = load_semeval2018_ec(data_dir=str(tmp_path))  # the parent of semeval2018_ec/
    assert dd["train"]["labels"] == [[], ["anger", "trust"]]
    assert dd["test"][0]["labels"] == ["joy", "love"]
    monkeypatch.setenv("LM_EVAL_MLC_DATA_DIR", str(folder))
    assert load_semeval2018_ec()["validation"]["id"] == ["d1"]


def test_missing_file(tmp_path: Path) -> None:
    folder = write_dir(tmp_path, GOOD)
    (folder / "2018-E-c-En-train.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks 2018-E-c-En-train\.txt"):
        load_semeval2018_ec(data_dir=str(folder))


def test_bad_files_report_every_problem(tmp_path: Path) -> None:
    bad = {
        "train": [
            f"t1\tfirst\t{ZEROS}",
            "t2\tonly\t1\t0",  # line 3: too few fields
            "t3\t  \t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t2",  # line 4: empty text, trust = 2
            f"t1\tagain\t{ZEROS}",  # line 5: duplicate id
        ],
        "validation": [f"g1\tin two splits\t{ZEROS}"],  # also in test
        "test": [f"g1\tgold\t{ZEROS}"],
    }
    folder = write_dir(tmp_path, bad)
    with pytest.raises(DataValidationError) as info:
        load_semeval2018_ec(data_dir=str(folder))
    train, dev = str(folder / "2018-E-c-En-train.txt"), str(folder / "2018-E-c-En-dev.txt")
    test = str(folder / "2018-E-c-En-test-gold.txt")
    assert [str(p) for p in info.value.problems] == [
        f"{train}:3: field 'columns': expected 13 tab-separated fields, got 4",
        f"{train}:4: field 'trust': expected 0 or 1, got '2'",
        f"{train}:4: field 'Tweet': empty text",
        f"{train}:5: field 'ID': duplicate id 't1' (first on row 2)",
        f"{test}:2: field 'ID': duplicate id 'g1' (first on {dev} row 2)",
    ]


def test_bad_header_and_id_list(tmp_path: Path) -> None:
    folder = write_dir(tmp_path, GOOD)
    dev = folder / "2018-E-c-En-dev.txt"
    dev.write_text(dev.read_text().replace("\tjoy\t", "\tjoyful\t"))
    with pytest.raises(DataValidationError, match=r"dev\.txt:1: field 'header'"):
        load_semeval2018_ec(data_dir=str(folder))
    shutil.rmtree(folder)
    folder = write_dir(tmp_path, GOOD)
    ids = tmp_path / "ids.txt"
    ids.write_text("d1\nnope\n")
    with pytest.raises(DataValidationError) as info:
        load_semeval2018_ec(data_dir=str(folder), id_subset=str(ids))
    assert [(p.file, p.row, p.field) for p in info.value.problems] == [(str(ids), 2, "id")]
    with pytest.raises(FileNotFoundError, match="main_test_set"):
        load_semeval2018_ec(data_dir=str(folder), id_subset="main_test_set")


# --- Hub path (mocked) -----------------------------------------------------------------------


def hub_data() -> datasets.DatasetDict:
    """GOOD in the Hub schema: ID, Tweet and one bool column per emotion."""
    features = datasets.Features(
        {"ID": datasets.Value("string"), "Tweet": datasets.Value("string")}
        | {name: datasets.Value("bool") for name in EMOTIONS}
    )
    splits = {}
    for split, lines in GOOD.items():
        rows = [line.split("\t") for line in lines]
        columns = {"ID": [r[0] for r in rows], "Tweet": [r[1] for r in rows]}
        columns |= {name: [r[2 + i] == "1" for r in rows] for i, name in enumerate(EMOTIONS)}
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(splits)


def test_hub_matches_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LM_EVAL_MLC_DATA_DIR", raising=False)
    calls = []

    def load_dataset(path: str, name: str | None = None, **kwargs: object):
        calls.append((path, name))
        return hub_data()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    hub = load_semeval2018_ec()
    assert calls == [(HUB_PATH, HUB_CONFIG)]
    local = load_semeval2018_ec(data_dir=str(write_dir(tmp_path, GOOD)))
    for split in ("train", "validation", "test"):
        assert hub[split].to_list() == local[split].to_list()
    with pytest.raises(ValueError, match="pass the path of an id list file"):
        load_semeval2018_ec(id_subset="main_test_set")


def test_label_names() -> None:
    assert label_names() == list(EMOTIONS) and len(EMOTIONS) == 11
