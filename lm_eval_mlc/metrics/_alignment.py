"""Alignment of model label probabilities with the spread of human annotators' choices.

For datasets with several raters per doc (e.g. GoEmotions), q = fraction of raters who chose a
label is a soft target; these scores ask how close the model's p = P(label is on) comes to it.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import rel_entr

from ._checks import check_probs

#: `align_bce` clips p to [BCE_EPS, 1 - BCE_EPS] so a confident miss costs ~13.8 nats, not inf.
BCE_EPS = 1e-6


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Base-2 Jensen-Shannon divergence between the rows of `p` and `q`, each renormalised.

    Equals `scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2` where SciPy is finite.
    SciPy's square root turns rounding noise below 0 into NaN for near-identical rows, and its
    M = (P + Q) / 2 underflows to 0 beside the smallest subnormal, giving inf; here each term
    P ln(P / M) is written as rel_entr(2P, P + Q) / 2, whose ratio never exceeds 2, and the
    result is clipped to [0, 1] against rounding.
    """
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    s = p + q
    js = (rel_entr(2 * p, s).sum(axis=1) + rel_entr(2 * q, s).sum(axis=1)) / (4 * np.log(2))
    return np.clip(js, 0.0, 1.0)


def alignment_scores(probs: ArrayLike, annotator_probs: ArrayLike) -> dict[str, float]:
    """Distances between model probabilities p and annotator fractions q, both (n_docs, n_labels).

    Returns, averaged over all (doc, label) pairs unless said otherwise (lower is better):

    - `align_mae`: |p - q|, in [0, 1].
    - `align_brier`: (p - q)^2, in [0, 1].
    - `align_bce`: -[q ln p + (1 - q) ln(1 - p)] with p clipped to [1e-6, 1 - 1e-6]; in nats,
      and not 0 at p == q unless q is 0 or 1 (it includes the entropy of q).
    - `align_js`: mean over docs of the base-2 Jensen-Shannon divergence, in [0, 1], between p
      and q each renormalised to sum to 1 over the labels (a distribution over which label a
      rater picks). Docs where either row sums to 0 have no distribution and are skipped; NaN
      if every doc is skipped.
    - `align_js_skipped`: the number of docs skipped for `align_js`, an int.
    """
    p = check_probs("probs", probs)
    q = check_probs("annotator_probs", annotator_probs, shape=p.shape)
    clipped = np.clip(p, BCE_EPS, 1 - BCE_EPS)
    kept = (p.sum(axis=1) > 0) & (q.sum(axis=1) > 0)
    js = _js_divergence(p[kept], q[kept])
    return {
        "align_mae": float(np.mean(np.abs(p - q))),
        "align_brier": float(np.mean((p - q) ** 2)),
        "align_bce": float(-np.mean(q * np.log(clipped) + (1 - q) * np.log1p(-clipped))),
        "align_js": float(js.mean()) if js.size else float("nan"),
        "align_js_skipped": int(np.count_nonzero(~kept)),
    }
