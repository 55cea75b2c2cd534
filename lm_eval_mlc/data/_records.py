"""Reading local data files as text, lines or CSV records, with every problem reported.

The one CSV record reader of the loaders: a record is reported on the line it starts on
(quoted text may span lines), and bad bytes or field counts become `DataProblem`s, so the
caller can go on checking the rest of the file.
"""

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from lm_eval_mlc.data._errors import DataProblem

Record = tuple[int, list[str]]


def read_text(path: Path, problems: list[DataProblem]) -> str:
    """The file as UTF-8 text without a leading byte-order mark (spreadsheets write one).

    Each line that is not UTF-8 is a problem; such lines are read with U+FFFD in place of the
    bad bytes, so the caller can go on checking the rest of the file.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for row, line in enumerate(data.split(b"\n"), start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                message = (
                    f"not UTF-8: byte 0x{line[err.start]:02x} at byte {err.start + 1} of the line"
                )
                problems.append(DataProblem(str(path), row, "encoding", message))
        text = data.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def lines(path: Path, problems: list[DataProblem]) -> list[str]:
    """Lines split on '\\n' only (tweets hold other Unicode line breaks), '\\r' removed."""
    text = read_text(path, problems).split("\n")
    if text[-1] == "":
        text.pop()
    return [line.removesuffix("\r") for line in text]


def csv_records(
    path: Path, problems: list[DataProblem], *, delimiter: str = ","
) -> Iterator[Record]:
    """Every record of a CSV (or TSV) file, header and blank lines included, as (line, fields).

    The line is the 1-based line the record starts on, which is what a user finds in an editor.
    """
    with io.StringIO(read_text(path, problems), newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        end = 0
        for record in reader:
            # Quoted text may span lines; report the line the record starts on.
            row, end = end + 1, reader.line_num
            yield row, record


def missing_columns(
    columns: Sequence[str], required: Sequence[str], source: str, row: int
) -> list[DataProblem]:
    """A problem for each `required` column not among `columns`, in `required` order."""
    present = set(columns)
    return [
        DataProblem(source, row, name, "missing required column")
        for name in required
        if name not in present
    ]


def read_csv(
    path: Path, required: Sequence[str], problems: list[DataProblem]
) -> tuple[list[str] | None, Iterator[Record]]:
    """A headed CSV file: its header and its data records, as (line, fields).

    The header is None (and there are no records) when the file is empty or lacks a required
    column. Records with another field count than the header are problems and are skipped.
    """
    source = str(path)
    records = csv_records(path, problems)
    first = next(records, None)
    if first is None:
        problems.append(DataProblem(source, 0, "columns", "empty file; expected a header"))
        return None, iter(())
    header = first[1]
    missing = missing_columns(header, required, source, 1)
    if missing:
        problems += missing
        return None, iter(())
    return header, _same_width(records, len(header), source, problems)


def _same_width(
    records: Iterator[Record], width: int, source: str, problems: list[DataProblem]
) -> Iterator[Record]:
    for row, record in records:
        if len(record) != width:
            message = f"expected {width} comma-separated fields, got {len(record)}"
            problems.append(DataProblem(source, row, "columns", message))
            continue
        yield row, record
