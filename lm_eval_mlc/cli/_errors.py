"""The one way a subcommand reports bad input: `lm-eval-mlc <cmd>: error: ...`, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: What bad input raises: missing or unreadable files (OSError), bad values, broken files and
#: data problems (ValueError: DataValidationError, GateInputError, ProbeInputError, JSON errors
#: are ValueErrors), and a missing optional dependency (ImportError, e.g. matplotlib).
EXPECTED: tuple[type[BaseException], ...] = (OSError, ValueError, ImportError)


@contextmanager
def expected_errors(
    command: str, expected: tuple[type[BaseException], ...] = EXPECTED
) -> Iterator[None]:
    """Turn `expected` exceptions raised in the block into a one-line error and exit 2.

    Anything else (a bug) keeps its traceback.
    """
    try:
        yield
    except expected as err:
        print(f"lm-eval-mlc {command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def warn(command: str, message: str) -> None:
    print(f"lm-eval-mlc {command}: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)
