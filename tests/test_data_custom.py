"""Bring-your-own data: loader, validation, and a user's YAML run from its own folder."""

import json
import math
import os
import subprocess
import sys

import pytest

from lm_eval_mlc._paths import TASKS_DIR
from lm_eval_mlc.data import DataValidationError
from lm_eval_mlc.data.custom import load_custom, load_custom_task


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def tickets(tmp_path):
    train = _write(tmp_path / "train.csv", "id,body,billing,outage\n4,Refund please,1,0\n"
                   "5,Cannot log in since the outage,0,1\n")  # fmt: skip
    test = _write(tmp_path / "test.csv", "id,body,billing,outage\n1,My invoice is wrong,1,0\n"
                  "2,Site down and I was charged twice,1,1\n3,Thanks!,0,0\n")  # fmt: skip
    return {"train": train, "test": test}


def test_label_columns(tickets):
    data, names = load_custom(
        data_files=tickets, text_column="body", id_column="id", label_columns=["billing", "outage"]
    )
    assert names == ["billing", "outage"]
    assert data["test"]["labels"] == [["billing"], ["billing", "outage"], []]
    assert data["test"]["id"] == ["1", "2", "3"] and len(data["train"]) == 2
    assert len(data["validation"]) == 0  # not given: empty, so lm-eval's splits still exist
    assert data["test"]["annotator_probs"] == [[], [], []]


def test_label_list_column_in_jsonl_infers_the_label_set(tmp_path):
    rows = [
        {"text": "a", "tags": ["x", "y"]},
        {"text": "b", "tags": "z; x"},
        {"text": "c", "tags": []},
    ]
    path = _write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows))
    data, names = load_custom(data_files=path, labels_column="tags")
    assert names == ["x", "y", "z"]  # sorted, as found in the data
    assert data["test"]["labels"] == [["x", "y"], ["x", "z"], []]


def test_per_annotator_rows_become_distributions(tmp_path):
    # Doc 7: annotators a (twice: {joy} then {}), b ({joy, fear}), c ({fear}).
    # a counts once with mean (0.5, 0): joy = (0.5 + 1 + 0) / 3 = 0.5, fear = (0 + 1 + 1) / 3 = 2/3.
    # Gold = strict majority: fear only.
    path = _write(tmp_path / "r.csv", "id,rater,text,joy,fear\n7,a,hi,1,0\n7,a,hi,0,0\n"
                  "7,b,hi,1,1\n7,c,hi,0,1\n8,a,yo,1,0\n")  # fmt: skip
    data, _ = load_custom(
        data_files=path, id_column="id", annotator_column="rater", label_columns=["joy", "fear"]
    )
    test = data["test"]
    assert test["id"] == ["7", "8"] and test["n_raters"] == [3, 1]
    assert test["annotator_probs"][0] == pytest.approx([0.5, 2 / 3])
    assert test["labels"] == [["fear"], ["joy"]]


def test_hundreds_of_labels(tmp_path):
    names = [f"subject {i}" for i in range(300)]
    rows = [{"text": f"doc {i}", "subjects": [names[i], names[(i * 7) % 300]]} for i in range(20)]
    path = _write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows))
    data = load_custom_task(data_files=path, labels_column="subjects", label_names=names)
    assert len(data["test"][0]["label_names"]) == 300
    assert data["test"][3]["labels"] == ["subject 3", "subject 21"]


def test_all_problems_are_reported_with_key_or_file_row_and_column(tmp_path):
    bad = _write(tmp_path / "bad.csv", "id,body,a,b\n1,ok,1,0\n1,,2,0\n3,fine,0,maybe\n")
    with pytest.raises(DataValidationError) as err:
        load_custom(data_files=bad, text_column="body", id_column="id", label_columns=["a", "b"])
    text = str(err.value)
    assert f"{bad}:3: field 'a': expected 0/1, got '2'" in text
    assert f"{bad}:3: field 'body': empty text" in text
    assert f"{bad}:4: field 'b': expected 0/1, got 'maybe'" in text
    assert f"{bad}:3: field 'id': duplicate id '1'" in text

    with pytest.raises(DataValidationError, match="field 'nope': no such column"):
        load_custom(data_files=bad, text_column="nope", label_columns=["a"])
    with pytest.raises(DataValidationError, match="dataset_kwargs.label_columns"):
        load_custom(data_files=bad, label_columns=["a"], labels_column="b")
    with pytest.raises(DataValidationError, match="dataset_kwargs.data_files.train"):
        load_custom(data_files={"train": "missing.csv", "test": bad}, label_columns=["a"])
    with pytest.raises(DataValidationError, match="repeats 'Joy'"):
        load_custom(
            data_files=bad,
            text_column="body",
            label_columns=["a", "b"],
            label_names=["Joy", "joy "],
        )
    with pytest.raises(DataValidationError, match="unknown label 'w'"):
        path = _write(tmp_path / "d.jsonl", json.dumps({"text": "t", "l": ["w"]}))
        load_custom(data_files=path, labels_column="l", label_names=["v"])


def _user_yaml(folder, tickets):
    (folder / "tickets.yaml").write_text(
        f"include: {TASKS_DIR}/_mlc_custom_template_yaml\n"
        "task: tickets_ml\n"
        "dataset_kwargs:\n"
        f"  data_files: {{train: {tickets['train']}, test: {tickets['test']}}}\n"
        "  text_column: body\n  id_column: id\n  label_columns: [billing, outage]\n"
        "description: \"Ticket labels: {{ label_names | join(', ') }}. JSON list.\\n\\n\"\n"
        'doc_to_text: "Ticket: {{ text }}\\nLabels:"\n'
    )


@pytest.mark.slow
def test_a_users_yaml_in_its_own_folder_becomes_a_task(tmp_path, tickets, smollm2_lm):
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import task_manager

    folder = tmp_path / "my_tasks"
    folder.mkdir()
    _user_yaml(folder, tickets)
    manager = task_manager(include_path=str(folder), include_defaults=False)
    task = manager.load(["tickets_ml"])["tasks"]["tickets_ml"]
    doc = task.test_docs()[1]
    assert task.doc_to_text(doc) == "Ticket: Site down and I was charged twice\nLabels:"
    assert task.doc_to_target(doc) == '["billing", "outage"]'

    smollm2_lm.batch_size_per_gpu = 3
    out = simple_evaluate(
        model=smollm2_lm, tasks=["tickets_ml"], task_manager=manager, gen_kwargs="max_gen_toks=16"
    )
    results = out["results"]["tickets_ml"]
    assert 0.0 <= results["micro_f1,generated"] <= 1.0
    assert 0.0 <= results["ece,max_over_steps"] <= 1.0
    assert math.isnan(results["align_mae,generated"])


@pytest.mark.slow
def test_a_users_bad_data_fails_before_the_model_loads(tmp_path, tickets):
    folder = tmp_path / "my_tasks"
    folder.mkdir()
    _write(tmp_path / "test.csv", "id,body,billing,outage\n1,,1,0\n")
    _user_yaml(folder, tickets)
    cmd = [
        *(sys.executable, "-m", "lm_eval", "--tasks", "tickets_ml", "--include_path", str(folder)),
        *("--model", "hf-mlc", "--model_args", f"pretrained={tmp_path / 'no-model'}"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode != 0
    assert f"{tickets['test']}:2: field 'body': empty text" in proc.stderr
    assert "Initializing hf-mlc model" not in proc.stderr
