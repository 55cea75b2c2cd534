"""Supervised alignment probe: a model's hidden state where it starts its first label -> P(label).

The study's supervised method reads the hidden state of the model at the position where it is
about to write its first label, and fits one logistic regression per label on it, after
standardisation and truncated SVD. Targets are the annotators' label fractions q in [0, 1]
(the gold 0/1 set where a data set has no annotators).

Soft targets are fitted exactly: every row enters twice, once as class 1 with sample weight q
and once as class 0 with weight 1 - q, so scikit-learn's weighted log-loss equals the soft-label
cross-entropy -[q ln p + (1 - q) ln(1 - p)]. With 0/1 targets the zero-weight copies are dropped
and the fit is the ordinary one.

`hidden_features` is the model adapter (any lm-eval `HFLM`, so `hf` and `hf-mlc`); `fit_probe`,
`predict_proba` and `probe_metrics` are pure functions over NumPy arrays.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from lm_eval_mlc import metrics

#: A label predicted positive when its probe probability reaches this (as in the harness).
THRESHOLD = 0.5


@dataclass(frozen=True)
class Probe:
    """A fitted probe. `classifiers[j]` is label j's regression, or a float: the constant rate
    of a label whose target never varied in training (a regression cannot be fitted there)."""

    scaler: StandardScaler
    svd: TruncatedSVD | None
    classifiers: tuple[LogisticRegression | float, ...]
    label_names: tuple[str, ...]

    @property
    def n_components(self) -> int:
        """Dimensions the regressions see (the raw feature count when SVD was skipped)."""
        return self.svd.n_components if self.svd is not None else int(self.scaler.n_features_in_)


def _check_features(features: ArrayLike, *, n_rows: int | None = None) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"Expected `features` of shape (n_docs, n_features), but got {x.shape}.")
    if n_rows is not None and x.shape[0] != n_rows:
        raise ValueError(f"Expected {n_rows} feature rows (one per target row), got {x.shape[0]}.")
    if not np.isfinite(x).all():
        raise ValueError("Expected finite `features`, but got NaN or infinity.")
    return x


def fit_probe(
    features: ArrayLike,
    targets: ArrayLike,
    *,
    label_names: Sequence[str] | None = None,
    n_components: int = 64,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> Probe:
    """Fit StandardScaler -> TruncatedSVD -> one logistic regression per label.

    features: (n, d) hidden states; targets: (n, L) in [0, 1], annotator fractions or 0/1 gold.
    SVD keeps min(n_components, d - 1, n - 1) dimensions (skipped when that is below 1). `C` is
    scikit-learn's inverse L2 strength. A label whose target is constant over the rows is not
    fitted; it predicts that constant.
    """
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] == 0:
        raise ValueError(f"Expected `targets` of shape (n_docs, n_labels), but got {y.shape}.")
    x = _check_features(features, n_rows=y.shape[0])
    if x.shape[0] < 2:
        raise ValueError(f"Expected at least 2 training rows, but got {x.shape[0]}.")
    if not (np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0):
        raise ValueError("Expected `targets` in [0, 1], but got values outside it or NaN.")
    if n_components < 1:
        raise ValueError(f"Expected `n_components` >= 1, but got {n_components}.")
    names = tuple(label_names) if label_names is not None else tuple(map(str, range(y.shape[1])))
    if len(names) != y.shape[1]:
        raise ValueError(f"Expected {y.shape[1]} label names, but got {len(names)}.")

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    k = min(n_components, x.shape[1] - 1, x.shape[0] - 1)
    svd = TruncatedSVD(n_components=k, random_state=seed).fit(z) if k >= 1 else None
    if svd is not None:
        z = svd.transform(z)
    classifiers = tuple(_fit_label(z, y[:, j], C=C, max_iter=max_iter) for j in range(y.shape[1]))
    return Probe(scaler, svd, classifiers, names)


def _fit_label(
    z: np.ndarray, q: np.ndarray, *, C: float, max_iter: int
) -> LogisticRegression | float:
    """One label's regression on soft targets q (rows duplicated, weights q and 1 - q)."""
    if np.ptp(q) == 0.0:
        return float(q[0])
    x2 = np.vstack([z, z])
    y2 = np.r_[np.ones(len(q)), np.zeros(len(q))]
    w2 = np.r_[q, 1.0 - q]
    keep = w2 > 0.0
    return LogisticRegression(C=C, max_iter=max_iter).fit(
        x2[keep], y2[keep], sample_weight=w2[keep]
    )


def predict_proba(probe: Probe, features: ArrayLike) -> np.ndarray:
    """P(label) of shape (n, L) for hidden states of shape (n, d)."""
    x = _check_features(features)
    expected = probe.scaler.n_features_in_
    if x.shape[1] != expected:
        raise ValueError(
            f"Expected {expected} features per row (as in training), got {x.shape[1]}."
        )
    z = probe.scaler.transform(x)
    if probe.svd is not None:
        z = probe.svd.transform(z)
    columns = [
        np.full(len(z), clf) if isinstance(clf, float) else clf.predict_proba(z)[:, 1]
        for clf in probe.classifiers
    ]
    return np.column_stack(columns)


def probe_metrics(
    y_true: ArrayLike, probs: ArrayLike, annotator_probs: ArrayLike | None = None
) -> dict[str, float]:
    """The harness's metrics of probe probabilities (n, L) against gold 0/1 labels (n, L).

    Labels are predicted at P >= 0.5. `align_*` are added when `annotator_probs` (n, L) is given.
    """
    true = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    pred = (p >= THRESHOLD).astype(int)
    out = {
        "micro_f1": metrics.multilabel_f1(true, pred, average="micro"),
        "macro_f1": metrics.multilabel_f1(true, pred, average="macro"),
        "samples_f1": metrics.multilabel_f1(true, pred, average="samples"),
        "exact_match": metrics.exact_match(true, pred),
        "ece_em10": metrics.expected_calibration_error(true, p, n_bins=10),
        "brier": metrics.brier_score(true, p),
        "roc_auc_micro": metrics.roc_auc(true, p, average="micro"),
        "roc_auc_macro": metrics.roc_auc(true, p, average="macro"),
    }
    if annotator_probs is not None:
        out |= metrics.alignment_scores(p, annotator_probs)
    return out


# ---------------------------------------------------------------------- model adapter
def hidden_features(
    lm: Any,
    contexts: Sequence[str],
    *,
    layer: int = -1,
    batch_size: int = 8,
    desc: str = "probe features",
) -> np.ndarray:
    """Hidden state (n, hidden_size) at the last token of each context, from an lm-eval `HFLM`.

    `layer` indexes `output_hidden_states` (0: embeddings, -1: the last layer). Batches are left
    padded by the model's own `tok_batch_encode` (left-truncated to `lm.max_length`), longest
    first; position ids count real tokens only, so a padded row gets the same state as alone.
    """
    if not contexts:
        raise ValueError("Expected at least one context, but got none.")
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}.")
    n_states = lm.model.config.num_hidden_layers + 1
    if not -n_states <= layer < n_states:
        raise ValueError(f"Expected `layer` in [{-n_states}, {n_states - 1}], but got {layer}.")
    accepted = inspect.signature(lm.model.forward).parameters
    # Logits are not needed: keep one position's (the whole (B, T, vocab) tensor is large).
    logits = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    rows: list[np.ndarray | None] = [None] * len(contexts)
    with torch.no_grad(), tqdm(total=len(contexts), desc=desc) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = lm.tok_batch_encode(
                [contexts[i] for i in chunk], left_truncate_len=lm.max_length
            )
            ids, mask = ids.to(lm.device), mask.to(lm.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            extra = {"position_ids": positions} if "position_ids" in accepted else {}
            out = lm.model(
                input_ids=ids,
                attention_mask=mask,
                output_hidden_states=True,
                use_cache=False,
                **logits,
                **extra,
            )
            states = out.hidden_states[layer][:, -1, :].float().cpu().numpy()
            for i, state in zip(chunk, states, strict=True):
                rows[i] = state
            bar.update(len(chunk))
    return np.stack(rows)  # type: ignore[arg-type]
