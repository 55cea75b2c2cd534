"""Where an answer's item ends: what `hf-mlc` asks to find the tokens that end a label."""

from lm_eval_mlc.core._text import (
    _AND_RE,
    _BLANK_LINE_RE,
    _DROP_SEPARATORS,
    _DROP_TRAILING,
    _ITEM_ENDS,
    _QUOTES,
    _TRAIL_JUNK,
    _WORD_RE,
)

#: Characters that can end an unquoted item: the separators (``,``, ``;``, ``|``, ``]``, line
#: breaks), ``/`` (splits a delimited piece that is not itself a label), ``"`` (opens the next
#: item in a bracketed list) and the trailing punctuation the normaliser strips (``.``, ``!``,
#: quotes, brackets, ...), which ends the item when only such junk follows up to a separator or
#: the end. Whether a given text does is :func:`closes_item`'s answer.
UNQUOTED_CLOSERS: str = "".join(dict.fromkeys(_ITEM_ENDS + '/"' + _TRAIL_JUNK.replace(" ", "")))


def closes_item(quote: str, following_text: str, *, at_end: bool = True) -> bool:
    """Whether an item whose label text ends where `following_text` begins ends there, as
    :func:`parse_labels` reads it.

    `quote` is the item's :attr:`LabelSpan.quote`. `following_text` is read from its start,
    skipping what the normaliser drops after a label (whitespace and invisible characters
    throughout; ``_``/``-`` first, then trailing punctuation, stray quotes and brackets: ``joy-.``
    is ``joy``, ``joy.-`` is not); the first other character decides:

    * quoted (``"``, ``'``, ``\\"``): the closing quote closes (for ``\\"`` also a plain ``"``, as
      the retried reading sees both as ``"``), except a ``'`` followed by a word character
      (``'joy's'`` goes on, as single-quoted strings read). A blank line also closes,
      as an unclosed list is read up to its first blank line.
    * unquoted (``""``): a separator (``,``, ``;``, ``|``, ``]``, a line break), ``/``, the word
      ``and`` after a non-word character, ``"``, or ``'`` after a non-word character (a quote
      opens the next item in a bracketed list).

    Running out of `following_text` closes the item when `at_end` (the text is all that
    follows, as ``text[span.end:]`` is, or EOS comes next) and decides nothing otherwise: pass
    ``at_end=False`` for a token whose continuation is unknown, so that ``"."``, ``" "`` or
    ``" and"`` (which may go on as ``" android"``) do not count. With ``at_end=False`` a True
    holds whatever follows.

    Neither the label set nor the reading (list or delimited) is known here, so for unquoted
    items: ``/`` and ``and`` close as in a delimited answer, where they split only a piece that
    is not itself a label (``Rock and Roll``, ``Sci/Tech`` stay whole), while a bracketed list
    does not split on them; quotes close as in a bracketed list, while a delimited answer reads
    them as junk (``joy"x`` is not joy there); and an ``and`` or ``'`` right at the start is taken
    to follow a word character, as it does unless the label ends in punctuation (``C++``). A
    span's own text always closes (``closes_item(span.quote, text[span.end:])``). Raises
    ValueError on an unknown `quote`.
    """
    if quote not in _QUOTES:
        raise ValueError(f"Expected argument `quote` to be one of {_QUOTES}, but got {quote!r}")
    text, n = following_text, len(following_text)
    dropping = _DROP_SEPARATORS
    i = 0
    while i < n:
        c = text[i]
        if quote:
            if c == quote[-1] or (c == "\\" and text.startswith(quote, i)):
                if quote != "'":
                    return True
                if i + 1 < n:
                    return not _WORD_RE.match(text, i + 1)
                return at_end
            if c == "\n" and _BLANK_LINE_RE.match(text, i):
                return True
        else:
            if c in _ITEM_ENDS or c == "/" or c == '"':
                return True
            if i and not _WORD_RE.match(text[i - 1]):
                if c == "'":
                    return True
                if (word := _AND_RE.match(text, i)) is not None:
                    return word.end() < n or at_end
        if c not in dropping:
            if dropping is _DROP_TRAILING or c not in _DROP_TRAILING:
                return False
            dropping = _DROP_TRAILING
        i += 1
    return at_end
