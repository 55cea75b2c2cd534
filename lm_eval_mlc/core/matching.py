"""The one label matcher: an answer's text, its items, their labels and where they are.

Both readers of a generated answer go through :func:`parse_labels` here: the answer parser
(the ``generated`` strategy and ``invalid_label_rate``, through :mod:`lm_eval_mlc.core.parsing`)
and the step finder (:func:`label_spans`, which tells ``hf-mlc`` where each label starts so that
its probability can be measured). One pass finds the items, one normaliser keys them and one
matcher names them, so the two readers find the same labels by construction: a near miss
(``sadnes``), a split piece (``joy and anger``) or a variant (``Sex-Harassment``) that the
parser credits is also a step. The reading rules (JSON or delimited, splitting, near misses,
counting) are documented in :mod:`lm_eval_mlc.core.parsing`, the public parser module.

Spans (:class:`LabelSpan`), one per matched label, at the label's first occurrence:

* ``text[start:end]`` is the item as the model wrote it, without the edge characters the
  normaliser drops (quotes, brackets, bullets, enumerators such as ``1.``, trailing
  punctuation, whitespace, ``_``/``-`` and invisible characters): ``Anger``, ``sex harassment``,
  ``sadnes``.
* A JSON string that holds an escape (``"\\u00fcber"``, ``"joy\\n"``) decodes to text that is not
  in the answer: its span covers the raw characters that spell the label part of the decoded
  string, escapes included (``\\u00fcber``), and runs to the closing quote when an escape
  follows the label (``joy\\n``), so ``text[start:end]`` then differs from the label text and
  reads as it once decoded as a JSON string.
* ``quote`` is what encloses a quoted string item: ``"``, ``'``, or ``\\"`` in an answer whose JSON
  was escaped twice (``[\\"joy\\"]``, spanned in the original text). It is ``""`` for unquoted
  items, which includes every piece of a delimited answer: there quotes are edge junk, not
  structure.

Where an item ends: :func:`lm_eval_mlc.core.item_ends.closes_item` says whether the text after a
label's last character ends the item as :func:`parse_labels` reads it (``hf-mlc`` uses it to find
the tokens that end a label). The pieces: :mod:`._text` (normalisation), :mod:`._reading` (items
and the label index), :mod:`.item_ends`.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lm_eval_mlc.core._reading import (
    _Item,
    _json_items,
    _label_index,
    _LabelIndex,
    _Matcher,
    _pieces,
)
from lm_eval_mlc.core._text import (
    _ALL_JUNK,
    _clean,
    _first_paragraph,
    _label_bounds,
    _same,
    _written_offsets,
    normalise_label,
)

#: The invalid item standing for all pieces past the inspection cap.
TRUNCATED_ITEM = "<further items not inspected>"


@dataclass(frozen=True)
class LabelSpan:
    """Where a label's item lies in an answer (see the module docstring).

    Attributes:
        start: offset in the text where the item's label text, as written, begins (quotes,
            junk and leading space excluded).
        end: offset just past it (trailing junk and quote excluded).
        label: index into the label names.
        quote: what encloses the item (``"``, ``'`` or ``\\"``), ``""`` when unquoted.
    """

    start: int
    end: int
    label: int
    quote: str


@dataclass(frozen=True, slots=True)
class ParsedLabels:
    """One parsed answer.

    Attributes:
        labels: matched canonical label names, in label-set order, each at most once.
        invalid: items that matched no label, in output order (edge junk stripped, case kept).
        n_items: distinct non-empty items other than none-markers (see the reading rules).
        fmt: how the text was read: ``"json"``, ``"delimited"`` or ``"empty"`` (blank text).
        spans: one :class:`LabelSpan` per label of `labels`, at its first occurrence, sorted by
            ``start`` (offsets in the text as passed). Not part of equality: it is where the
            labels are, not what was parsed.
    """

    labels: tuple[str, ...]
    invalid: tuple[str, ...]
    n_items: int
    fmt: Literal["json", "delimited", "empty"]
    spans: tuple[LabelSpan, ...] = field(default=(), compare=False)


def parse_labels(
    text: str | None, label_names: Sequence[str], *, cutoff: float = 0.8
) -> ParsedLabels:
    """Parse a generated answer into labels of `label_names`; never raises on any `text`.

    `cutoff` is the :func:`difflib.get_close_matches` similarity needed for a near miss to
    match. Raises ValueError if `cutoff` is outside [0, 1] or two label names share a
    normalised form (or one has none). Reading rules: :mod:`lm_eval_mlc.core.parsing`.
    """
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must be in [0, 1], got {cutoff!r}")
    index = _label_index(tuple(label_names))
    text = text or ""
    body = text.strip()
    if not body:
        return ParsedLabels((), (), 0, "empty")
    locate = _Locator(body, len(text) - len(text.lstrip()))
    start = body.find("[")
    if start < 0:
        return _collect(
            _pieces(_first_paragraph(body), 0, index), index, cutoff, "delimited", locate
        )
    items, locate.read, locate.shift = _json_items(body, start, index)
    return _collect(items, index, cutoff, "json", locate)


def label_spans(text: str, label_names: Sequence[str], *, cutoff: float = 0.8) -> list[LabelSpan]:
    """One span per label that ``parse_labels(text, label_names, cutoff=cutoff).labels`` holds,
    at its first occurrence, sorted by ``start`` (see the module docstring)."""
    return list(parse_labels(text, label_names, cutoff=cutoff).spans)


class _Locator:
    """Turns an item's place in the text read into a span in the text as passed: `shift` maps
    offsets of the text read to offsets of `body` (the stripped text), which starts at `lead`."""

    def __init__(self, body: str, lead: int) -> None:
        self.body, self.lead = body, lead
        self.read, self.shift = body, _same  # the text read and its offsets in body

    def __call__(self, raw: str, start: int, end: int, opening: int, label: int) -> LabelSpan:
        a, b = _label_bounds(raw)
        if end - start == len(raw):  # verbatim
            start, end = start + a, start + b
        else:  # a JSON string with escapes: where its decoded characters a:b are written
            content = self.read[start:end]
            written = _written_offsets(content)
            if len(written) == len(raw) + 1:
                # An escape after the label stays in the span: closes_item reads no escapes.
                if "\\" not in content[written[b] :]:
                    end = start + written[b]
                start += written[a]
        quote = "" if opening < 0 else self.body[self.shift(opening)]
        if quote == "\\":  # a quote that was escaped twice
            quote = '\\"'
        return LabelSpan(self.lead + self.shift(start), self.lead + self.shift(end), label, quote)


def _collect(
    items: Iterator[_Item],
    index: _LabelIndex,
    cutoff: float,
    fmt: Literal["json", "delimited"],
    locate: _Locator,
) -> ParsedLabels:
    """Match items against the label set, applying the counting policy (see the reading
    rules), and locate each label's first item."""
    match = _Matcher(index, cutoff)
    spans: dict[str, LabelSpan] = {}
    invalid: list[str] = []
    seen: set[tuple[str, bool]] = set()
    inspected = 0
    for raw, is_str, start, end, opening in items:
        if is_str and not raw.strip(_ALL_JUNK):  # cheap pre-check: pure junk is common
            continue
        key = normalise_label(raw) if is_str else raw
        if not key:
            continue
        if inspected == index.cap:
            invalid.append(TRUNCATED_ITEM)
            seen.add((TRUNCATED_ITEM, False))
            break
        inspected += 1
        if (is_str and key in index.none_markers) or (key, is_str) in seen:
            continue
        seen.add((key, is_str))
        label = match(key) if is_str else None
        if label is None:
            invalid.append(_clean(raw) if is_str else raw)
        elif label not in spans:
            spans[label] = locate(raw, start, end, opening, index.rank[label])
    labels = tuple(sorted(spans, key=index.rank.__getitem__))
    located = tuple(sorted(spans.values(), key=lambda span: span.start))
    return ParsedLabels(labels, tuple(invalid), len(seen), fmt, located)
