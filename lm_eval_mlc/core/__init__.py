"""The pure model of the domain: how answers, labels and their places in the text relate.

Everything under `lm_eval_mlc.core` is pure Python (NumPy at most) and imports no torch,
transformers or lm-eval, so it can be read, tested and reused without a model or the harness;
`tests/test_layers.py` checks that rule. The layers above (`scoring/`, `harness/`, `reports/`)
import from here, never the other way round.

* `matching`: the one normaliser, splitter and matcher that both the answer parser and the
  step finder of `hf-mlc` use; `parsing`: its reading rules, documented;
* `trie`: label token sequences as a prefix trie; `strategies`: per-step distributions and the
  label-probability strategies; `rules`: uncertainty decision rules;
* `calibration`: Platt scaling and F1-optimal thresholds; `payload`: the versioned JSON that
  `hf-mlc` returns.
"""
