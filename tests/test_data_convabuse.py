"""ConvAbuse loader: annotator proportions on hand-checked real items, split matching, errors."""

import csv
from pathlib import Path

import datasets
import numpy as np
import pytest

from lm_eval_mlc.data import DataValidationError
from lm_eval_mlc.data.convabuse import ABUSE_TYPES, load_convabuse
from lm_eval_mlc.harness import records as harness


@pytest.fixture(scope="module")
def real(data_dir: Path) -> datasets.DatasetDict:
    return load_convabuse(data_dir=str(data_dir))


@pytest.fixture(scope="module")
def by_turn(real: datasets.DatasetDict) -> dict[tuple[str, str], dict]:
    return {(doc["conv_id"], doc["text"]): doc for split in real.values() for doc in split}


def probs(**on: float) -> list[float]:
    return [on.get(name, 0.0) for name in ABUSE_TYPES]


def test_real_counts(real: datasets.DatasetDict) -> None:
    assert {name: len(split) for name, split in real.items()} == {
        "train": 2501,
        "validation": 831,
        "test": 853,
    }
    assert real["test"].column_names == [
        "id", "text", "labels", "annotator_probs", "n_raters",
        "conv_id", "bot", "prev_agent", "prev_user", "agent",
    ]  # fmt: skip
    docs = [doc for split in real.values() for doc in split]
    assert len({doc["id"] for doc in docs}) == 4185
    assert all(len(doc["annotator_probs"]) == 7 and 2 <= doc["n_raters"] <= 7 for doc in docs)
    # Majority-vote positives on the test split.
    test_labels = real["test"]["labels"]
    counts = {name: sum(name in labels for labels in test_labels) for name in ABUSE_TYPES}
    assert counts == {
        "ableism": 0, "homophobic": 7, "intellectual": 18, "racist": 3, "sexist": 16,
        "sex_harassment": 40, "transphobic": 0,
    }  # fmt: skip


def test_real_alignment_metrics_are_numbers(real: datasets.DatasetDict) -> None:
    # The test split's annotator fractions against a constant P = 0.1 for every type.
    q = np.array(real["test"]["annotator_probs"])
    records = [{"probs": [0.1] * 7, "annotator_probs": row.tolist()} for row in q]
    assert harness.align_mae(records) == pytest.approx(np.abs(0.1 - q).mean())
    assert harness.align_brier(records) == pytest.approx(((0.1 - q) ** 2).mean())
    assert 0.0 < harness.align_js(records) < 1.0  # over the docs where someone chose a type
    assert np.isfinite(harness.align_bce(records))
    assert 0 < (q.sum(axis=1) > 0).sum() < len(q)


@pytest.mark.parametrize(
    ("conv_id", "user", "expected", "labels", "n_raters"),
    [
        # full.csv lines 3, 1400, 5823, 7996: Annotator7, 4 none; Annotator1, 3 sex_harassment.
        # 2 of 4 = 0.5 is no strict majority. (Texts are matched by prefix.)
        ("159183.0", "do you like it hard", probs(sex_harassment=2 / 4), [], 4),
        # lines 79, 92, 2842, 6349: Annotator7 twice (none, then sexist) = 0.5 for Annotator7;
        # Annotator8 and Annotator5 sexist: (0.5 + 1 + 1) / 3 annotators.
        ("317637.0", "your mama is so ugl", probs(sexist=2.5 / 3), ["sexist"], 3),
        # lines 935..9987: 6 annotators. intellectual: Annotator4 (both repeats), 1, 2, 5 = 4/6;
        # ableism: only Annotator4's second response = 0.5 / 6.
        (
            "363490.0",
            "Indeed moron",
            probs(ableism=0.5 / 6, intellectual=4 / 6),
            ["intellectual"],
            6,
        ),
        # lines 69, 7133, 7241, 7723: Annotator5 twice (none, sex_harassment); 3 annotators.
        ("176054.0", "Well, it is swollen", probs(sex_harassment=0.5 / 3), [], 3),
    ],
)
def test_real_hand_checked_items(
    by_turn: dict, conv_id: str, user: str, expected: list[float], labels: list, n_raters: int
) -> None:
    (doc,) = [d for (c, text), d in by_turn.items() if c == conv_id and text.startswith(user)]
    assert doc["annotator_probs"] == pytest.approx(expected)
    assert doc["labels"] == labels
    assert doc["n_raters"] == n_raters


def test_real_case_colliding_items_keep_their_own_split(by_turn: dict) -> None:
    # The split files re-capitalised "yes" as "Yes"; the full file has both items, told apart by
    # their annotators. valid row example_id 622: Annotators 4, 7, 8; test 624: 2, 3, 8.
    conv = "2.6896E+15"
    yes = [doc for (c, text), doc in by_turn.items() if c == conv and text.lower() == "yes"]
    assert sorted(doc["id"] for doc in yes) == ["622", "624"]


FULL_HEADER = [
    "example_no", "annotator_id", "conv_id", "prev_agent", "prev_user", "agent", "user", "bot",
    "is_abuse.1", "is_abuse.0", "is_abuse.-1", "is_abuse.-2", "is_abuse.-3",
    *(f"type.{name}" for name in ABUSE_TYPES),
]  # fmt: skip
TURNS = {"a": ["c1", "hi", "hello", "how are you?", "yes"], "b": ["c1", "hi", "hello", "ok", "Yes"]}


def full_row(n: int, annotator: str, item: str, types: str = "") -> list[str]:
    flags = [str(int(name in types.split())) for name in ABUSE_TYPES]
    return [str(n), annotator, *TURNS[item], "Bot", "0", "0", "1", "0", "0", *flags]


def split_row(example_id: str, item: str, annotators: list[str]) -> list[str]:
    turns = [t.capitalize() if i else t for i, t in enumerate(TURNS[item])]
    return [example_id, *turns, "Bot", *("1" if n in annotators else "" for n in ("A1", "A2"))]


def write_dir(tmp_path: Path, full: list[list[str]], splits: dict[str, list[list[str]]]) -> Path:
    folder = tmp_path / "convabuse"
    folder.mkdir()
    with (folder / "ConvAbuseEMNLPfull.csv").open("w", newline="") as f:
        csv.writer(f).writerows([FULL_HEADER, *full])
    header = ["example_id", *FULL_HEADER[2:8], "A1_is_abuse.1", "A2_is_abuse.-1"]
    for name in ("train", "valid", "test"):
        with (folder / f"ConvAbuseEMNLP{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([header, *splits.get(name, [])])
    return folder


def test_small_dir(tmp_path: Path) -> None:
    full = [
        full_row(0, "A1", "a", "sexist"),
        full_row(1, "A2", "a", "sexist racist"),
        full_row(2, "A1", "b"),  # same turns as "a" up to case; only A1 judged it
    ]
    splits = {"train": [split_row("7.0", "a", ["A1", "A2"])], "test": [split_row("9", "b", ["A1"])]}
    dd = load_convabuse(data_dir=str(write_dir(tmp_path, full, splits)))
    assert dd["train"]["id"] == ["7"]
    assert dd["train"][0]["annotator_probs"] == probs(racist=0.5, sexist=1.0)
    assert dd["train"][0]["labels"] == ["sexist"]
    assert (dd["test"][0]["text"], dd["test"][0]["n_raters"]) == ("Yes", 1)
    assert len(dd["validation"]) == 0


def test_bad_files_report_every_problem(tmp_path: Path) -> None:
    full = [
        full_row(0, "A1", "a", "sexist"),
        full_row(1, "", "a"),  # line 3: empty annotator
        [*full_row(2, "A2", "a")[:-1], "2"],  # line 4: transphobic = 2
        full_row(3, "A1", "b"),  # line 5: in no split file
    ]
    splits = {"train": [split_row("7", "a", ["A1"]), split_row("8", "a", ["A2"])]}
    folder = write_dir(tmp_path, full, splits)
    with pytest.raises(DataValidationError) as info:
        load_convabuse(data_dir=str(folder))
    full_csv, train = (
        str(folder / "ConvAbuseEMNLPfull.csv"),
        str(folder / "ConvAbuseEMNLPtrain.csv"),
    )
    assert [str(p) for p in info.value.problems] == [
        f"{full_csv}:3: field 'annotator_id': empty annotator_id",
        f"{full_csv}:4: field 'type.transphobic': expected 0 or 1, got '2'",
        f"{full_csv}:5: field 'conv_id': item (conv_id + turns) is in no split file",
        f"{train}:3: field 'example_id': no item of ConvAbuseEMNLPfull.csv has these turns "
        "and annotators",
    ]


def test_needs_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LM_EVAL_MLC_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="ConvAbuse is read from local files"):
        load_convabuse()
