"""GoEmotions loader: real split files, a hand-written per-rater fixture, the Hub path (mocked)
and error reporting on broken files."""

import csv
import logging
import os
import pickle
import shutil
import time
from pathlib import Path

import datasets
import pytest

from lm_eval_mlc.data import DataProblem, DataValidationError, load_goemotions
from lm_eval_mlc.data._local import DATA_DIR_ENV
from lm_eval_mlc.data.goemotions.hub import HUB_PATH
from lm_eval_mlc.data.goemotions.labels import CLUSTERS, EKMAN, EMOTIONS, label_names

FIXTURE = Path(__file__).parent / "fixtures" / "goemotions_raw"
SHARED = Path(
    os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data"
)
REAL = SHARED / "goemotions" if (SHARED / "goemotions").is_dir() else SHARED
needs_real = pytest.mark.skipif(
    not (REAL / "train.tsv").is_file(),
    reason=f"real GoEmotions files not found at {REAL} (set {DATA_DIR_ENV})",
)
SCHEMES = ("clusters", "full", "ekman")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the Hub; Hub tests install their own fake `load_dataset`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected datasets.load_dataset{args}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def rows_of(split: datasets.Dataset) -> list[dict]:
    """All rows as dicts (one Arrow read; iterating a Dataset row by row is slow)."""
    batch = split[:]
    return [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]


def by_id(split: datasets.Dataset) -> dict[str, dict]:
    return {doc["id"]: doc for doc in rows_of(split)}


# --- label schemes ---------------------------------------------------------------------------


def test_label_names() -> None:
    assert label_names("clusters") == [
        "joy", "optimism", "admiration", "surprise", "fear", "sadness", "anger",
    ]  # fmt: skip
    assert label_names("full") == list(EMOTIONS[:27])
    assert "neutral" not in label_names("full") and len(label_names("full")) == 27
    assert label_names("ekman") == ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
    with pytest.raises(ValueError, match="unknown GoEmotions scheme"):
        label_names("plutchik")  # type: ignore[arg-type]


@pytest.mark.parametrize("groups", [CLUSTERS, EKMAN])
def test_groups_partition_the_27_emotions(groups: dict[str, tuple[str, ...]]) -> None:
    members = [emotion for emotions in groups.values() for emotion in emotions]
    assert sorted(members) == sorted(EMOTIONS[:27])


# --- real files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> dict[str, datasets.DatasetDict]:
    if not (REAL / "train.tsv").is_file():
        pytest.skip(f"real GoEmotions files not found at {REAL} (set {DATA_DIR_ENV})")
    start = time.perf_counter()
    loaded = {scheme: load_goemotions(scheme=scheme, data_dir=str(REAL)) for scheme in SCHEMES}
    # A guard against accidentally quadratic validation, not a benchmark (about 1 s each).
    assert time.perf_counter() - start < 20
    return loaded


@needs_real
def test_real_row_counts_and_columns(real: dict[str, datasets.DatasetDict]) -> None:
    for dd in real.values():
        assert {name: len(split) for name, split in dd.items()} == {
            "train": 43410,
            "validation": 5426,
            "test": 5427,
        }
        assert dd["test"].column_names == ["id", "text", "labels", "annotator_probs", "n_raters"]


@needs_real
@pytest.mark.parametrize(
    ("doc_id", "expected"),
    [
        # test.tsv line 14: "0,7" = admiration, curiosity
        ("eeccgbb", (["admiration", "surprise"], ["admiration", "curiosity"], ["joy", "surprise"])),
        # test.tsv line 18: "25,27" = sadness, neutral (neutral adds nothing)
        ("eezp1cd", (["sadness"], ["sadness"], ["sadness"])),
        # "3,10,11" = annoyance, disapproval, disgust
        ("ee4sivg", (["anger"], ["annoyance", "disapproval", "disgust"], ["anger", "disgust"])),
        # "5,18,20" = caring, love, optimism
        ("ef8zi31", (["joy", "optimism"], ["caring", "love", "optimism"], ["joy"])),
        # test.tsv line 5: "27" = neutral only
        ("eem5uti", ([], [], [])),
    ],
)
def test_real_hand_checked_rows(
    real: dict[str, datasets.DatasetDict], doc_id: str, expected: tuple[list[str], ...]
) -> None:
    for scheme, labels in zip(SCHEMES, expected, strict=True):
        assert by_id(real[scheme]["test"])[doc_id]["labels"] == labels, scheme


@needs_real
def test_real_text_keeps_quotes_and_whitespace(real: dict[str, datasets.DatasetDict]) -> None:
    test = real["clusters"]["test"]
    assert test[0]["text"].startswith("I’m really sorry about your situation :(")
    # test.tsv line 3 ends with a space before the tab; the text is kept verbatim.
    assert test[2]["text"].endswith("interesting game to watch! ")
    assert sum('"' in text for text in real["clusters"]["train"][:]["text"]) > 1000


@needs_real
def test_real_has_no_rater_data(real: dict[str, datasets.DatasetDict]) -> None:
    for dd in real.values():
        for split in dd.values():
            batch = split[:]
            assert set(batch["n_raters"]) == {0}
            assert all(probs == [] for probs in batch["annotator_probs"])


@needs_real
def test_real_neutral_share(real: dict[str, datasets.DatasetDict]) -> None:
    # Texts labelled only 27 = neutral have no labels in every scheme.
    lines = (REAL / "dev.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    neutral = {line.split("\t")[2] for line in lines if line.split("\t")[1] == "27"}
    assert len(neutral) > 1000
    for dd in real.values():
        empty = {doc["id"] for doc in rows_of(dd["validation"]) if not doc["labels"]}
        assert empty == neutral


@needs_real
def test_real_paper_subset() -> None:
    dd = load_goemotions(data_dir=str(REAL), id_subset="main_test_set")
    listed = (REAL / "paper_id_lists" / "main_test_set.txt").read_text().split()
    assert len(listed) == 231
    assert dd["test"]["id"] == listed
    dev_ids = {line.split("\t")[2] for line in (REAL / "dev.tsv").read_text().splitlines()}
    assert set(listed) <= dev_ids
    assert len(dd["validation"]) == 5426 - 231
    assert not set(dd["validation"][:]["id"]) & set(listed)
    assert len(dd["train"]) == 43410


@needs_real
def test_real_dir_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = REAL.parent
    for data_dir in (parent, REAL):
        assert len(load_goemotions(data_dir=str(data_dir))["validation"]) == 5426
    monkeypatch.setenv(DATA_DIR_ENV, str(parent))
    assert len(load_goemotions()["test"]) == 5427
    # The argument wins over the environment variable.
    assert len(load_goemotions(data_dir=str(FIXTURE))["test"]) == 3


# --- per-rater fixture -----------------------------------------------------------------------

# goemotions_1.csv (emotions chosen per rater; * = example_very_unclear, skipped):
#   f_te1: r1 anger+joy, r2 annoyance+joy, r3 gratitude, r4*      -> 3 raters
#   f_dv1: r1 amusement+disgust, r5 neutral                        -> 2 raters
#   f_te2: r6 nothing, r7 anger+sadness+neutral                    -> 2 raters
#   f_dv3: r2*                                                     -> no usable rater
#   f_zz9: r3 joy (id in no split)                                 -> ignored
EXPECTED_PROBS = {
    "clusters": {  # joy, optimism, admiration, surprise, fear, sadness, anger
        # joy: r1, r2 (joy) = 2/3; admiration: r3 (gratitude) = 1/3; anger: r1, r2 = 2/3
        "f_te1": [2 / 3, 0, 1 / 3, 0, 0, 0, 2 / 3],
        # joy: r1 (amusement) = 1/2; anger: r1 (disgust) = 1/2; r5 neutral counts as none
        "f_dv1": [1 / 2, 0, 0, 0, 0, 0, 1 / 2],
        # sadness, anger: r7 only = 1/2 each; r6 chose nothing but counts
        "f_te2": [0, 0, 0, 0, 0, 1 / 2, 1 / 2],
    },
    "ekman": {  # anger, disgust, fear, joy, sadness, surprise
        # anger: r1 (anger), r2 (annoyance) = 2/3; joy: r1, r2 (joy), r3 (gratitude) = 3/3
        "f_te1": [2 / 3, 0, 0, 1, 0, 0],
        "f_dv1": [0, 1 / 2, 0, 1 / 2, 0, 0],
        "f_te2": [1 / 2, 0, 0, 0, 1 / 2, 0],
    },
}
FULL_TE1 = {"anger": 1 / 3, "annoyance": 1 / 3, "gratitude": 1 / 3, "joy": 2 / 3}
N_RATERS = {"f_te1": 3, "f_dv1": 2, "f_te2": 2}


def all_docs(dd: datasets.DatasetDict) -> dict[str, dict]:
    return {doc["id"]: doc for split in dd.values() for doc in rows_of(split)}


@pytest.mark.parametrize("scheme", ["clusters", "ekman"])
def test_fixture_annotator_probs(scheme: str) -> None:
    docs = all_docs(load_goemotions(scheme=scheme, data_dir=str(FIXTURE)))
    for doc_id, probs in EXPECTED_PROBS[scheme].items():
        assert docs[doc_id]["annotator_probs"] == pytest.approx(probs), doc_id
        assert docs[doc_id]["n_raters"] == N_RATERS[doc_id]
    for doc_id in ("f_tr1", "f_tr2", "f_tr3", "f_dv2", "f_dv3", "f_te3"):
        assert docs[doc_id]["annotator_probs"] == [] and docs[doc_id]["n_raters"] == 0, doc_id


def test_fixture_full_scheme() -> None:
    docs = all_docs(load_goemotions(scheme="full", data_dir=str(FIXTURE)))
    names = label_names("full")
    expected = [FULL_TE1.get(name, 0.0) for name in names]
    assert docs["f_te1"]["annotator_probs"] == pytest.approx(expected)
    assert docs["f_te1"]["labels"] == ["anger", "joy"]  # "17,2" in label-set order
    assert docs["f_te2"]["labels"] == ["anger", "sadness"]
    assert docs["f_dv1"]["annotator_probs"][names.index("amusement")] == 0.5


def test_fixture_docs() -> None:
    dd = load_goemotions(data_dir=str(FIXTURE))
    assert list(dd) == ["train", "validation", "test"]
    assert dd["test"][0] == {
        "id": "f_te1",
        "text": 'He said "thanks" and left, lol',
        "labels": ["joy", "anger"],
        "annotator_probs": pytest.approx([2 / 3, 0, 1 / 3, 0, 0, 0, 2 / 3]),
        "n_raters": 3,
    }
    assert dd["train"]["labels"] == [["joy"], ["surprise", "anger"], []]


def test_fixture_unknown_rater_ids_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lm_eval_mlc.data.goemotions"):
        load_goemotions(data_dir=str(FIXTURE))
    ignored = [r for r in caplog.records if "in no split" in r.getMessage()]
    assert len(ignored) == 1 and "1 rater rows for 1 ids" in ignored[0].getMessage()


def test_annotators_false_and_unused_kwargs() -> None:
    dd = load_goemotions(
        data_dir=str(FIXTURE), annotators=False, version=1.0, pretrained="x", scheme="clusters"
    )
    docs = all_docs(dd)
    assert all(doc["annotator_probs"] == [] and doc["n_raters"] == 0 for doc in docs.values())


def test_fixture_id_subset_file(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("f_te2\n\n  f_dv1  ")  # a blank line, no trailing newline
    dd = load_goemotions(data_dir=str(FIXTURE), id_subset=str(ids))
    assert dd["test"]["id"] == ["f_te2", "f_dv1"]
    assert dd["test"][1]["annotator_probs"] == pytest.approx([0.5, 0, 0, 0, 0, 0, 0.5])
    assert dd["validation"]["id"] == ["f_dv2", "f_dv3"]
    assert dd["train"]["id"] == ["f_tr1", "f_tr2", "f_tr3"]


def test_fixture_id_subset_unknown_ids(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("f_te2\nnope\nf_te2\n")
    with pytest.raises(DataValidationError) as info:
        load_goemotions(data_dir=str(FIXTURE), id_subset=str(ids))
    assert [(p.file, p.row, p.field) for p in info.value.problems] == [
        (str(ids), 2, "id"),
        (str(ids), 3, "id"),
    ]
    assert "id 'nope' is not in train, validation or test" in str(info.value)


def test_id_subset_name_needs_lists_dir() -> None:
    with pytest.raises(FileNotFoundError, match="paper_id_lists"):
        load_goemotions(data_dir=str(FIXTURE), id_subset="main_test_set")


def test_env_var_and_bad_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(FIXTURE))
    assert len(load_goemotions()["test"]) == 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_goemotions(data_dir=str(tmp_path / "missing"))
    (tmp_path / "train.tsv").write_text("a\t1\tx\n")
    with pytest.raises(FileNotFoundError, match=r"lacks dev\.tsv, test\.tsv, emotions\.txt"):
        load_goemotions(data_dir=str(tmp_path))


# --- Hub path (mocked) -----------------------------------------------------------------------


def hub_simplified() -> datasets.DatasetDict:
    """The fixture TSVs in the Hub `simplified` schema."""
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.ClassLabel(names=list(EMOTIONS))),
            "id": datasets.Value("string"),
        }
    )
    splits = {}
    for split, file_name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        rows = [line.split("\t") for line in (FIXTURE / f"{file_name}.tsv").read_text().split("\n")]
        columns = {
            "text": [text for text, _, _ in rows[:-1]],
            "labels": [[int(i) for i in labels.split(",")] for _, labels, _ in rows[:-1]],
            "id": [doc_id for _, _, doc_id in rows[:-1]],
        }
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(splits)


def hub_raw() -> datasets.DatasetDict:
    """The fixture's per-rater CSV in the Hub `raw` schema (ints and bools, not strings)."""
    types = {"created_utc": "float32", "rater_id": "int32", "example_very_unclear": "bool"}
    types |= {name: "int32" for name in EMOTIONS}
    parse = {"float32": float, "int32": int, "bool": lambda v: v == "True", "string": str}
    with (FIXTURE / "goemotions_1.csv").open(newline="") as f:
        records = list(csv.DictReader(f))
    kinds = {name: types.get(name, "string") for name in records[0]}
    columns = {name: [parse[kind](r[name]) for r in records] for name, kind in kinds.items()}
    features = datasets.Features({name: datasets.Value(kind) for name, kind in kinds.items()})
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns, features=features)})


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    calls: list[str] = []

    def load_dataset(path: str, name: str | None = None, **kwargs: object) -> datasets.DatasetDict:
        assert path == HUB_PATH
        calls.append(name)
        return {"simplified": hub_simplified, "raw": hub_raw}[name]()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hub_matches_local(fake_hub: list[str], scheme: str) -> None:
    hub = load_goemotions(scheme=scheme)
    local = load_goemotions(scheme=scheme, data_dir=str(FIXTURE))
    assert fake_hub == ["simplified", "raw"]
    for split in ("train", "validation", "test"):
        assert hub[split].to_list() == local[split].to_list()
    assert hub["test"][0]["n_raters"] == 3


def test_hub_without_raw_config(
    fake_hub: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def load_dataset(path: str, name: str | None = None, **kwargs: object) -> datasets.DatasetDict:
        if name == "raw":
            raise ConnectionError("offline")
        return hub_simplified()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with caplog.at_level(logging.WARNING):
        dd = load_goemotions()
    assert "No per-rater data" in caplog.text and "offline" in caplog.text
    assert set(dd["test"]["n_raters"]) == {0}
    assert dd["test"]["labels"] == [["joy", "anger"], ["sadness", "anger"], []]


def test_hub_annotators_false_skips_raw(fake_hub: list[str]) -> None:
    load_goemotions(annotators=False)
    assert fake_hub == ["simplified"]


def test_hub_id_subset(fake_hub: list[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass the path of an id list file"):
        load_goemotions(id_subset="main_test_set")
    ids = tmp_path / "ids.txt"
    ids.write_text("f_dv3\nf_te1\n")
    assert load_goemotions(id_subset=str(ids))["test"]["id"] == ["f_dv3", "f_te1"]


def test_hub_bad_rater_values(fake_hub: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    raw = hub_raw()["train"].map(lambda r, i: {"joy": 2} if i == 1 else {}, with_indices=True)
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda path, name=None, **kw: hub_simplified() if name == "simplified" else {"train": raw},
    )
    with pytest.raises(DataValidationError) as info:
        load_goemotions()
    assert [str(p) for p in info.value.problems] == [
        f"{HUB_PATH}[raw/train]:2: field 'joy': expected 0 or 1, got 2"
    ]


# --- broken files ----------------------------------------------------------------------------


def broken_copy(tmp_path: Path) -> Path:
    target = tmp_path / "goemotions"
    shutil.copytree(FIXTURE, target)
    return target


def test_bad_split_files_report_every_problem(tmp_path: Path) -> None:
    data = broken_copy(tmp_path)
    (data / "train.tsv").write_text(
        "I love this so much!\t18\tf_tr1\n"
        "only two fields\t18\n"  # line 2
        "unknown label\t28\tf_tr4\n"  # line 3
        "not a number\t3,x\tf_tr5\n"  # line 4
        "   \t27\tf_tr6\n"  # line 5: whitespace-only text
        "again\t1\tf_tr1\n"  # line 6: duplicate id
        "no labels\t\tf_tr7\n"  # line 7
    )
    (data / "test.tsv").write_text("in two splits\t27\tf_dv2\n")
    with pytest.raises(DataValidationError) as info:
        load_goemotions(data_dir=str(data))
    train, test = str(data / "train.tsv"), str(data / "test.tsv")
    assert [(p.file, p.row, p.field) for p in info.value.problems] == [
        (train, 2, "columns"),
        (train, 3, "labels"),
        (train, 4, "labels"),
        (train, 5, "text"),
        (train, 6, "id"),
        (train, 7, "labels"),
        (test, 1, "id"),
    ]
    message = str(info.value)
    assert message.startswith("7 data problems:")
    for expected in (
        f"{train}:2: field 'columns': expected 3 tab-separated fields",
        f"{train}:3: field 'labels': label id 28 out of range 0..27",
        f"{train}:4: field 'labels': label id 'x' is not an integer",
        f"{train}:5: field 'text': empty text",
        f"{train}:6: field 'id': duplicate id 'f_tr1' (first on row 1)",
        f"{train}:7: field 'labels': no label ids",
        f"{test}:1: field 'id': id 'f_dv2' is also in {data / 'dev.tsv'} (row 2)",
    ):
        assert expected in message


def test_bad_rater_csv(tmp_path: Path) -> None:
    data = broken_copy(tmp_path)
    lines = (data / "goemotions_1.csv").read_text().split("\n")
    # Line 2 gets a text spanning two lines, so the next record starts on line 4.
    lines[1] = lines[1].replace('"He said', '"He said\n')
    lines[2] = lines[2].replace(",2,False,0,0,0,1,", ",,Maybe,0,0,0,2,")  # empty rater_id
    (data / "goemotions_1.csv").write_text("\n".join(lines))
    header = lines[0].replace(",rater_id", "").replace(",neutral", "")
    (data / "goemotions_2.csv").write_text(header + "\n")
    with pytest.raises(DataValidationError) as info:
        load_goemotions(data_dir=str(data))
    first, second = str(data / "goemotions_1.csv"), str(data / "goemotions_2.csv")
    assert sorted(str(p) for p in info.value.problems) == sorted(
        [
            f"{first}:4: field 'annoyance': expected 0 or 1, got '2'",
            f"{first}:4: field 'example_very_unclear': expected True or False, got 'Maybe'",
            f"{first}:4: field 'rater_id': empty rater_id",
            f"{second}:1: field 'rater_id': missing required column",
            f"{second}:1: field 'neutral': missing required column",
        ]
    )
    # Without per-rater data the same folder loads.
    assert len(load_goemotions(data_dir=str(data), annotators=False)["test"]) == 3


def test_bad_emotions_and_ekman_files(tmp_path: Path) -> None:
    data = broken_copy(tmp_path)
    names = (data / "emotions.txt").read_text().split("\n")
    names[1], names[3] = "amusment", "anger"
    (data / "emotions.txt").write_text("\n".join(names[:-1]))
    (data / "ekman_mapping.json").write_text('{\n"anger": ["anger"],\n"joy": ["joy"]\n}')
    with pytest.raises(DataValidationError) as info:
        load_goemotions(scheme="ekman", data_dir=str(data))
    emotions, ekman = str(data / "emotions.txt"), str(data / "ekman_mapping.json")
    problems = [(p.file, p.row, p.field) for p in info.value.problems]
    assert problems == [
        (emotions, 0, "name"),  # 27 names
        (emotions, 2, "name"),  # amusment
        (emotions, 4, "name"),  # anger again
        (ekman, 0, "disgust"),  # missing groups: whole-file problems first
        (ekman, 0, "fear"),
        (ekman, 0, "sadness"),
        (ekman, 0, "surprise"),
        (ekman, 2, "anger"),  # wrong members, on the key's line
        (ekman, 3, "joy"),
    ]
    assert f"{emotions}: field 'name': expected 28 emotion names" in str(info.value)


@needs_real
def test_real_ekman_file_agrees() -> None:
    assert (REAL / "ekman_mapping.json").is_file()
    load_goemotions(scheme="ekman", data_dir=str(REAL), annotators=False)


def test_error_message_cap_and_pickle() -> None:
    problems = [DataProblem("f.csv", row, "x", "bad") for row in range(2, 62)]
    error = DataValidationError(problems)
    message = str(error)
    assert message.count("f.csv:") == 50
    assert message.endswith("... and 10 more")
    assert "f.csv:2: field 'x': bad" in message
    assert len(error.problems) == 60
    assert isinstance(error, ValueError)
    assert pickle.loads(pickle.dumps(error)).problems == error.problems
    with pytest.raises(ValueError):
        DataValidationError([])
