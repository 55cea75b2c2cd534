"""Hostile input data: real files with several injected faults, all reported in one error.

Each case copies (a head of) the real files into a temporary folder, breaks them in several
ways at once and expects ONE `DataValidationError` naming every fault by file, 1-based row and
field, and nothing else (no cascade of follow-up problems). The last test runs the CLI on a
broken data dir and checks that it stops with that message before any model is built.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lm_eval_mlc.data import (
    DataValidationError,
    load_content_safety,
    load_convabuse,
    load_goemotions,
    load_semeval2018_ec,
)
from lm_eval_mlc.data.convabuse import ABUSE_TYPES
from lm_eval_mlc.data.custom import load_custom
from lm_eval_mlc.data.custom.files import YAML
from lm_eval_mlc.data.goemotions.labels import EMOTIONS

Where = tuple[str, int, str]  # (file name, 1-based row, field)
Case = tuple[Callable[..., Any], dict[str, Any], set[Where]]


def _lines(path: Path, n: int | None = None) -> list[str]:
    """The first `n` lines of a real file ('\\r' dropped; the loaders accept LF and CRLF)."""
    text = path.read_text(encoding="utf-8").split("\n")
    return [line.removesuffix("\r") for line in text if line][:n]


def _write(path: Path, lines: list[str], latin1: int | None = None) -> None:
    """Write `lines` as UTF-8, except item `latin1` (1-based), which is written as Latin-1."""
    data = [line.encode("utf-8") for line in lines]
    if latin1 is not None:
        data[latin1 - 1] = lines[latin1 - 1].encode("latin-1")
        assert data[latin1 - 1] != lines[latin1 - 1].encode("utf-8"), "needs a non-ASCII char"
    path.write_bytes(b"\n".join(data) + b"\n")


def _csv_line(record: list[str]) -> str:
    """One CSV record (quoted where needed; it spans lines if a field holds a newline)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(record)
    return out.getvalue().removesuffix("\n")


def _set(line: str, index: int, value: str, sep: str = "\t") -> str:
    fields = line.split(sep)
    fields[index] = value
    return sep.join(fields)


# --- one builder per loader: (loader, kwargs, expected problems) ------------------------------


def goemotions_case(data: Path, tmp: Path) -> Case:
    src, dst = data / "goemotions", tmp / "goemotions"
    dst.mkdir()
    train = _lines(src / "train.tsv", 200)
    _write(dst / "train.tsv", train)
    _write(dst / "dev.tsv", _lines(src / "dev.tsv", 200))
    test = _lines(src / "test.tsv", 200)
    test[2] = _set(test[2], 0, "   ")  # row 3: empty text
    test[4] = _set(test[4], 1, "3,99")  # row 5: label id out of range
    test[6] = _set(test[6], 1, "3,x")  # row 7: not an integer
    test[8] = "\t".join(test[8].split("\t")[:2])  # row 9: the id column is missing
    test[10] = _set(test[10], 2, test[1].split("\t")[2])  # row 11: duplicate of row 2's id
    test[12] = _set(test[12], 2, train[0].split("\t")[2])  # row 13: id also in train
    test[14] = _set(test[14], 1, "")  # row 15: no label ids at all
    _write(dst / "test.tsv", test)
    emotions = list(EMOTIONS)
    emotions[17], emotions[18] = "Joy", " joy"  # rows 18-19: not the release's names
    emotions[26] = "admiration"  # row 27: duplicate name
    _write(dst / "emotions.txt", emotions)

    header = ["id", "rater_id", "example_very_unclear", *EMOTIONS]
    ids = [line.split("\t")[2] for line in test[20:30]]
    raters = [_csv_line(header)]
    raters += [_csv_line([i, str(r), "FALSE", *["0"] * 27, "1"]) for r, i in enumerate(ids)]
    raters[2] = _csv_line(["", "7", "FALSE", *["0"] * 28])  # row 3: empty id
    raters[3] = _csv_line([ids[0], " ", "FALSE", *["0"] * 28])  # row 4: empty rater_id
    raters[4] = _csv_line([ids[0], "8", "FALSE", "2", *["0"] * 27])  # row 5: admiration = 2
    raters[5] = _csv_line([ids[0], "9", "maybe", *["0"] * 28])  # row 6: not a boolean
    raters[6] = _csv_line([ids[0], "10", "FALSE"])  # row 7: too few fields
    raters.append(_csv_line(["not-a-doc", "11", "FALSE", *["0"] * 28]))  # ignored, see below
    _write(dst / "goemotions_1.csv", raters)
    _write(dst / "goemotions_2.csv", [_csv_line([c for c in header if c != "rater_id"])])
    latin1 = _csv_line([ids[1], "café", "FALSE", *["0"] * 28])
    _write(dst / "goemotions_3.csv", [raters[0], raters[7], latin1], latin1=3)

    # Rater rows for ids in no split are legal here (the release's raw files rate texts that
    # the split files dropped); the loader logs and ignores them (tests/test_data_goemotions).
    expected = {
        *[("test.tsv", row, "text") for row in (3,)],
        *[("test.tsv", row, "labels") for row in (5, 7, 15)],
        ("test.tsv", 9, "columns"),
        *[("test.tsv", row, "id") for row in (11, 13)],
        *[("emotions.txt", row, "name") for row in (18, 19, 27)],
        ("goemotions_1.csv", 3, "id"),
        ("goemotions_1.csv", 4, "rater_id"),
        ("goemotions_1.csv", 5, "admiration"),
        ("goemotions_1.csv", 6, "example_very_unclear"),
        ("goemotions_1.csv", 7, "columns"),
        ("goemotions_2.csv", 1, "rater_id"),
        ("goemotions_3.csv", 3, "encoding"),
    }
    return load_goemotions, {"data_dir": str(tmp)}, expected


def semeval_case(data: Path, tmp: Path) -> Case:
    src, dst = data / "semeval2018_ec", tmp / "semeval2018_ec"
    dst.mkdir()
    train = _lines(src / "2018-E-c-En-train.txt", 150)
    train[0] = train[0].replace("\tjoy\t", "\tJoy\t")  # header: a renamed column
    _write(dst / "2018-E-c-En-train.txt", train)
    dev = _lines(src / "2018-E-c-En-dev.txt", 150)
    dev[2] = _set(dev[2], 1, "")  # row 3: empty tweet
    dev[4] = _set(dev[4], 2, "2")  # row 5: anger = 2
    dev[5] += "\textra"  # row 6: 14 fields
    dev[7] = _set(dev[7], 0, dev[1].split("\t")[0])  # row 8: duplicate of row 2's id
    dev[8] = _set(dev[8], 0, " ")  # row 9: empty id
    _write(dst / "2018-E-c-En-dev.txt", dev)
    test = _lines(src / "2018-E-c-En-test-gold.txt", 150)
    test[3] = _set(test[3], 0, dev[3].split("\t")[0])  # row 4: id also in dev
    test[5] = _set(test[5], 1, "Un café noir")
    _write(dst / "2018-E-c-En-test-gold.txt", test, latin1=6)  # row 6: not UTF-8
    expected = {
        ("2018-E-c-En-train.txt", 1, "header"),
        ("2018-E-c-En-dev.txt", 3, "Tweet"),
        ("2018-E-c-En-dev.txt", 5, "anger"),
        ("2018-E-c-En-dev.txt", 6, "columns"),
        ("2018-E-c-En-dev.txt", 8, "ID"),
        ("2018-E-c-En-dev.txt", 9, "ID"),
        ("2018-E-c-En-test-gold.txt", 4, "ID"),
        ("2018-E-c-En-test-gold.txt", 6, "encoding"),
    }
    return load_semeval2018_ec, {"data_dir": str(tmp)}, expected


def content_safety_case(data: Path, tmp: Path) -> Case:
    name = "content_moderation_lm3.jsonl"
    dst = tmp / "content_safety_llamaguard3"
    dst.mkdir()
    rows = _lines(data / "content_safety_llamaguard3" / name, 300)
    good = json.loads(rows[0])

    def row(**fields: Any) -> str:
        return json.dumps({**good, **fields}, ensure_ascii=False)

    rows[2] = rows[2][:-5]  # row 3: cut-off JSON
    rows[4] = row(unsafe_query=42)  # row 5: not a string
    rows[6] = row(unsafe_query="  ")  # row 7: empty
    rows[8] = row(llama_guard_3_categories=["S1", "S99"])  # row 9: unknown category
    rows[10] = row(llama_guard_3_categories=["S1", "S1"])  # row 11: repeated
    rows[12] = row(llama_guard_3_categories=[["S1"]])  # row 13: not a name
    rows[14] = "[1, 2]"  # row 15: not an object
    rows[16] = json.dumps({"unsafe_query": "q"})  # row 17: no categories
    rows[18] = row(unsafe_query="line\u2028separator and\u0085next line")  # row 19: fine
    rows[20] = row(unsafe_query="Où est le café ?")
    _write(dst / name, rows, latin1=21)  # row 21: not UTF-8
    categories = "llama_guard_3_categories"
    expected = {
        (name, 3, "json"),
        (name, 5, "unsafe_query"),
        (name, 7, "unsafe_query"),
        *[(name, r, categories) for r in (9, 11, 13, 17)],
        (name, 15, "json"),
        (name, 21, "encoding"),
    }
    return load_content_safety, {"data_dir": str(tmp)}, expected


def convabuse_case(data: Path, tmp: Path) -> Case:
    full_name, test_name = "ConvAbuseEMNLPfull.csv", "ConvAbuseEMNLPtest.csv"
    dst = tmp / "convabuse"
    shutil.copytree(data / "convabuse", dst)
    with (dst / full_name).open(encoding="utf-8", newline="") as f:
        full = list(csv.reader(f))
    column = {name: i for i, name in enumerate(full[0])}

    def variant(**fields: str) -> list[str]:
        record = list(full[1])
        for name, value in fields.items():
            record[column[name.replace("__", ".")]] = value
        return record

    first = len(full) + 1  # the line the first appended record starts on (one line each)
    extra = [
        variant(annotator_id=""),  # empty annotator
        variant(annotator_id="AnnotatorZ", type__sexist="yes"),  # not 0/1
        variant(annotator_id="AnnotatorZ", conv_id="999999.0"),  # rows of an item in no split
        variant(annotator_id="AnnotatorZ", conv_id="999998.0", user=" "),  # and empty user
    ]
    with (dst / full_name).open("a", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(extra)

    test = _lines(dst / test_name)
    record = next(csv.reader([test[1]]))
    test += [
        _csv_line(["", *record[1:]]),  # empty example_id
        test[1],  # the item of row 2 again, with the same example_id
        _csv_line(record[:5]),  # too few fields
    ]
    _write(dst / test_name, test)

    n = len(test) - 3  # the appended split rows start on line n + 1
    expected = {
        (full_name, first, "annotator_id"),
        (full_name, first + 1, "type.sexist"),
        (full_name, first + 2, "conv_id"),
        (full_name, first + 3, "user"),
        (full_name, first + 3, "conv_id"),
        (test_name, n + 1, "example_id"),
        (test_name, n + 2, "example_id"),
        (test_name, n + 3, "columns"),
    }
    return load_convabuse, {"data_dir": str(tmp)}, expected


def convabuse_missing_column_case(data: Path, tmp: Path) -> Case:
    """A split file without `user`: one problem, not one per item "in no split file"."""
    dst = tmp / "convabuse"
    shutil.copytree(data / "convabuse", dst)
    valid = _lines(dst / "ConvAbuseEMNLPvalid.csv")
    header = next(csv.reader([valid[0]]))
    valid[0] = _csv_line([name if name != "user" else "User" for name in header])
    _write(dst / "ConvAbuseEMNLPvalid.csv", valid)
    test = _lines(dst / "ConvAbuseEMNLPtest.csv")
    test.append(test[1])  # the item of row 2 again: still matched and reported
    _write(dst / "ConvAbuseEMNLPtest.csv", test)
    expected = {
        ("ConvAbuseEMNLPvalid.csv", 1, "user"),
        ("ConvAbuseEMNLPtest.csv", len(test), "example_id"),
    }
    return load_convabuse, {"data_dir": str(tmp)}, expected


def custom_columns_case(data: Path, tmp: Path) -> Case:
    """0/1 label columns in a CSV made of SemEval tweets; names that collide in the YAML."""
    dev = [line.split("\t") for line in _lines(data / "semeval2018_ec" / "2018-E-c-En-dev.txt", 60)]
    header = ["id", "text", *dev[0][2:]]
    records = [[r[0], r[1], *r[2:]] for r in dev[1:]]
    records[1][1] = ""  # line 3: empty text
    records[3][6] = "2"  # line 5: joy = 2
    records[5][0] = records[0][0]  # line 7: duplicate id
    records[7] = records[7][:4]  # line 9: too few fields
    records[9][1] = "un café"  # line 11: written as Latin-1 below
    records[11][1] = "first line\nsecond line"  # lines 13-14, one record: fine
    records[12][1] = " "  # line 15: empty text (numbering goes on after the 2-line record)
    path = tmp / "tweets.csv"
    _write(path, [_csv_line(header), *map(_csv_line, records)], latin1=11)
    names = [*header[2:6], "Joy", " joy", *header[8:]]  # "joy" twice after normalisation
    kwargs = {
        "data_files": {"test": str(path)},
        "id_column": "id",
        "label_columns": header[2:],
        "label_names": names,
    }
    expected = {
        ("tweets.csv", 3, "text"),
        ("tweets.csv", 5, "joy"),
        ("tweets.csv", 7, "id"),
        ("tweets.csv", 9, "(line)"),
        ("tweets.csv", 11, "encoding"),
        ("tweets.csv", 15, "text"),
        (YAML, 0, "dataset_kwargs.label_names"),
    }
    return load_custom, kwargs, expected


def custom_lists_case(data: Path, tmp: Path) -> Case:
    """A JSONL of label lists from the Llama Guard data; the label set is inferred."""
    source = _lines(data / "content_safety_llamaguard3" / "content_moderation_lm3.jsonl", 40)
    rows = [
        {"id": f"p{i}", "text": r["unsafe_query"], "labels": r["llama_guard_3_categories"]}
        for i, r in enumerate(map(json.loads, source))
    ]
    lines = [json.dumps(row) for row in rows]
    lines[2] = json.dumps({**rows[2], "text": 42})  # line 3: text not a string
    lines[3] = json.dumps({**rows[3], "text": None})  # line 4: text null
    lines[4] = '["a", "list"]'  # line 5: not an object
    lines[5] = json.dumps({**rows[5], "labels": ["S1", "s1"]})  # line 6: "s1" collides
    lines[6] = lines[6][:-3]  # line 7: cut-off JSON
    lines[7] = json.dumps({**rows[7], "text": "a\u2028b"}, ensure_ascii=False)  # line 8: fine
    lines[8] = json.dumps({**rows[8], "id": ""})  # line 9: empty id
    lines[9] = json.dumps({**rows[9], "id": "p0"})  # line 10: duplicate id
    path = tmp / "prompts.jsonl"
    _write(path, lines)
    kwargs = {"data_files": str(path), "id_column": "id", "labels_column": "labels"}
    expected = {
        ("prompts.jsonl", 3, "text"),
        ("prompts.jsonl", 4, "text"),
        ("prompts.jsonl", 5, "(line)"),
        ("prompts.jsonl", 6, "labels"),
        ("prompts.jsonl", 7, "(line)"),
        ("prompts.jsonl", 9, "id"),
        ("prompts.jsonl", 10, "id"),
    }
    return load_custom, kwargs, expected


def custom_annotators_case(data: Path, tmp: Path) -> Case:
    """Per-annotator rows from ConvAbuse's full file; a label set with a duplicate name."""
    with (data / "convabuse" / "ConvAbuseEMNLPfull.csv").open(encoding="utf-8") as f:
        full = list(csv.DictReader(f))[:200]
    item: dict[tuple[str, ...], str] = {}
    records = []
    for r in full:
        key = (r["conv_id"], r["prev_agent"], r["prev_user"], r["agent"], r["user"])
        doc_id = item.setdefault(key, f"item{len(item)}")
        chosen = [name for name in ABUSE_TYPES if r[f"type.{name}"] == "1"]
        records.append([doc_id, r["annotator_id"], r["user"], ";".join(chosen)])
    repeat = next(i for i in range(2, len(records)) if records[i][0] in {r[0] for r in records[:i]})
    records[1][1] = ""  # line 3: no annotator
    records[2][0] = ""  # line 4: an annotator row for no item
    records[repeat][2] += " (edited)"  # text differs from the item's first row
    records[4][3] = "sexist;martian"  # line 6: unknown label
    path = tmp / "ratings.csv"
    _write(path, [_csv_line(["id", "rater", "text", "types"]), *map(_csv_line, records)])
    kwargs = {
        "data_files": {"test": str(path)},
        "id_column": "id",
        "annotator_column": "rater",
        "text_column": "text",
        "labels_column": "types",
        "label_names": [*ABUSE_TYPES, "Sexist"],
    }
    expected = {
        ("ratings.csv", 3, "rater"),
        ("ratings.csv", 4, "id"),
        ("ratings.csv", repeat + 2, "text"),
        ("ratings.csv", 6, "types"),
        (YAML, 0, "dataset_kwargs.label_names"),
    }
    return load_custom, kwargs, expected


def custom_missing_columns_case(data: Path, tmp: Path) -> Case:
    """Missing columns in two files: both reported, with the columns the file does have."""
    lines = _lines(data / "goemotions" / "test.tsv", 30)
    train, test = tmp / "train.tsv", tmp / "test.tsv"
    _write(train, ["body\tlabels", *("\t".join(line.split("\t")[:2]) for line in lines)])
    _write(test, ["text\tlabel", *("\t".join(line.split("\t")[:2]) for line in lines)])
    kwargs = {
        "data_files": {"train": str(train), "test": str(test)},
        "labels_column": "labels",
        "label_separator": ",",
    }
    expected = {("train.tsv", 0, "text"), ("test.tsv", 0, "labels")}
    return load_custom, kwargs, expected


CASES = [
    goemotions_case,
    semeval_case,
    content_safety_case,
    convabuse_case,
    convabuse_missing_column_case,
    custom_columns_case,
    custom_lists_case,
    custom_annotators_case,
    custom_missing_columns_case,
]


@pytest.mark.parametrize("build", CASES, ids=lambda build: build.__name__.removesuffix("_case"))
def test_every_injected_fault_is_reported_once_with_file_row_and_field(
    build: Callable[[Path, Path], Case], data_dir: Path, tmp_path: Path
) -> None:
    load, kwargs, expected = build(data_dir, tmp_path)
    with pytest.raises(DataValidationError) as info:
        load(**kwargs)
    problems = info.value.problems
    found = {(Path(p.file).name if p.file != YAML else YAML, p.row, p.field) for p in problems}
    assert found == expected
    message = str(info.value)
    assert message.startswith(f"{len(problems)} data problem")
    for problem in problems:  # the message names the full path, row and field of each
        where = f"{problem.file}:{problem.row}" if problem.row else problem.file
        assert f"  {where}: field '{problem.field}': {problem.message}" in message


def test_cli_stops_on_bad_data_before_building_a_model(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from lm_eval.models.huggingface import HFLM

    from lm_eval_mlc import cli
    from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM

    built: list[str] = []

    def no_model(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(type(self).__name__)
        raise AssertionError("a model was constructed")

    monkeypatch.setattr(HFLM, "__init__", no_model)
    monkeypatch.setattr(HFMultiLabelLM, "__init__", no_model)
    monkeypatch.setattr("sys.argv", ["lm-eval-mlc"])
    _, _, expected = semeval_case(data_dir, tmp_path)
    argv = [
        *("run", "--model", "hf-mlc", "--model_args", "pretrained=/no/such/model"),
        *("--tasks", "semeval2018_ec_ml", "--limit", "2"),
        *("--metadata", json.dumps({"data_dir": str(tmp_path)})),
    ]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err  # lm-eval may log before it
    message = err[err.find("lm-eval-mlc run: error:") :]
    assert built == [] and info.value.code == 2
    assert message.startswith(f"lm-eval-mlc run: error: {len(expected)} data problems:")
    dev = tmp_path / "semeval2018_ec" / "2018-E-c-En-dev.txt"
    assert f"{dev}:5: field 'anger': expected 0 or 1, got '2'" in message
