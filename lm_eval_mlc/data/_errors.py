"""Data-validation errors shared by all loaders.

Loaders collect every problem in their input before raising, so a user fixes a broken file in
one pass instead of one error per run.
"""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class DataProblem:
    """One problem in an input file.

    `row` is the 1-based line a user sees in an editor (a CSV header is line 1, so its first
    data row is line 2); for in-memory sources such as Hub datasets it is the 1-based row
    index. `row == 0` means the file as a whole (e.g. it has the wrong number of lines).
    """

    file: str
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}" if self.row else self.file
        return f"{where}: field '{self.field}': {self.message}"


class DataValidationError(ValueError):
    """All problems found in a data set, raised once before any model is loaded.

    `problems` are grouped by file (in the order files first appear) and sorted by row within
    a file, whatever order the checks found them in.
    """

    #: How many problems the message lists; `problems` always holds all of them.
    max_listed = 50

    def __init__(self, problems: Iterable[DataProblem]) -> None:
        problems = list(problems)
        file_order = {problem.file: None for problem in problems}
        rank = {file: i for i, file in enumerate(file_order)}
        self.problems: tuple[DataProblem, ...] = tuple(
            sorted(problems, key=lambda problem: (rank[problem.file], problem.row))
        )
        if not self.problems:
            raise ValueError("DataValidationError needs at least one problem")
        super().__init__(self._message())

    def __reduce__(self) -> tuple[type, tuple[tuple[DataProblem, ...]]]:
        # The default reduce would call cls(message); rebuild from the problems instead.
        return (type(self), (self.problems,))

    def _message(self) -> str:
        count = len(self.problems)
        lines = [f"{count} data problem{'s' if count != 1 else ''}:"]
        lines += [f"  {problem}" for problem in self.problems[: self.max_listed]]
        if count > self.max_listed:
            lines.append(f"  ... and {count - self.max_listed} more")
        return "\n".join(lines)
