"""Alignment of model label probabilities with the spread of human annotators' choices.

For datasets with several raters per doc (e.g. GoEmotions), q = fraction of raters who chose a
label is a soft target; these scores ask how close the model's p = P(label is on) comes to it.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import rel_entr, xlog1py

from ._checks import check_probs

#: `align_bce` clips p to [BCE_EPS, 1 - BCE_EPS] so a confident miss costs ~13.8 nats, not inf.
BCE_EPS = 1e-6


def _mass_term(a: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a ln(2a / s), where 2a / s = 1 + x: via log1p(x) near x = 0, via the ratio elsewhere.

    log1p keeps the precision of an exactly formed x where a and the other mass nearly agree;
    the ratio keeps it near x = -1, where 1 + x rounds to 0 (a log1p(-1) would be -inf).
    """
    near = np.abs(x) < 0.5
    return np.where(near, xlog1py(a, np.where(near, x, 0.0)), rel_entr(2 * a, s) / 2)


def _js_terms(a: np.ndarray, b: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """Elementwise 2 ln 2 * the Jensen-Shannon divergence's share of one outcome of mass a vs b.

    That share is [a ln(2a / (a + b)) + b ln(2b / (a + b))] / 2, with 2a / (a + b) = 1 + x,
    x = diff / (a + b) and diff = a - b passed in, so callers can form the difference from
    exact inputs (q - p, not (1 - p) - (1 - q)). The ratios never exceed 2 (the M = (a + b) / 2
    that SciPy forms underflows to 0 beside the smallest subnormal, giving inf), and a term
    whose mass is 0 is 0.
    """
    s = a + b
    x = np.divide(diff, s, out=np.zeros_like(s), where=s > 0)
    return _mass_term(a, s, x) + _mass_term(b, s, -x)


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Base-2 Jensen-Shannon divergence between the rows of `p` and `q`, each renormalised.

    Equals `scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2` where SciPy is finite
    (its square root turns rounding noise below 0 into NaN for near-identical rows); the result
    is clipped to [0, 1] against rounding.
    """
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    return np.clip(_js_terms(p, q, p - q).sum(axis=1) / (2 * np.log(2)), 0.0, 1.0)


def _bernoulli_js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Elementwise base-2 Jensen-Shannon divergence between Bern(p) and Bern(q), in [0, 1].

    Equals `jensenshannon([p, 1 - p], [q, 1 - q], base=2) ** 2` where SciPy is finite, and is
    finite everywhere else: 0 at p == q, including at exactly 0 and 1.
    """
    on = _js_terms(p, q, p - q)
    off = _js_terms(1 - p, 1 - q, q - p)
    return np.clip((on + off) / (2 * np.log(2)), 0.0, 1.0)


def alignment_scores(probs: ArrayLike, annotator_probs: ArrayLike) -> dict[str, float]:
    """Distances between model probabilities p and annotator fractions q, both (n_docs, n_labels).

    Returns, averaged over all (doc, label) pairs unless said otherwise (lower is better):

    - `align_mae`: |p - q|, in [0, 1].
    - `align_brier`: (p - q)^2, in [0, 1].
    - `align_bce`: -[q ln p + (1 - q) ln(1 - p)] with p clipped to [1e-6, 1 - 1e-6]; in nats,
      and not 0 at p == q unless q is 0 or 1 (it includes the entropy of q).
    - `align_js_bern`: the base-2 Jensen-Shannon divergence between Bern(p) and Bern(q), in
      [0, 1]: per-label agreement, defined for every doc, including docs no rater labelled.
    - `align_js`: mean over docs of the base-2 Jensen-Shannon divergence, in [0, 1], between p
      and q each renormalised to sum to 1 over the labels (a distribution over which label a
      rater picks). Docs where either row sums to 0 have no distribution and are skipped; NaN
      if every doc is skipped.
    - `align_js_docs`: the number of docs `align_js` averaged over (both rows sum to > 0), an
      int; read it beside `align_js`, which a few docs can dominate.
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
        "align_js_bern": float(np.mean(_bernoulli_js(p, q))),
        "align_js": float(js.mean()) if js.size else float("nan"),
        "align_js_docs": int(np.count_nonzero(kept)),
    }
