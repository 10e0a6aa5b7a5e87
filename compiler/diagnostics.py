"""Source spans and the errors a user sees.

Every error a user can cause — in the source, the data, the choice of
estimator, the shapes — is a :class:`PPLError` carrying one or more
:class:`Diagnostic` s. Each diagnostic has a message, a :class:`Span` into the
source, and optional help; rendering shows the file, line, column, the source
line and a caret under the offending text::

    >>> src = Source("model.ppl", "gen f() {\\n  x ~ normall(0.0, 1.0)\\n}\\n")
    >>> d = Diagnostic("unknown distribution 'normall'", src.span(16, 23),
    ...                help="did you mean 'normal'?")
    >>> print(d.render())
    error: unknown distribution 'normall'
      --> model.ppl:2:7
       |
     2 |   x ~ normall(0.0, 1.0)
       |       ^^^^^^^
       = help: did you mean 'normal'?

Invariants: spans are half-open character offsets into one source text; line
and column are 1-based, computed on demand.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True, eq=False)
class Source:
    """A named source text (a file, or a string given to ``ppl.compile``)."""

    name: str
    text: str

    def span(self, start: int, end: int) -> "Span":
        return Span(self, start, max(end, start))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = min(max(offset, 0), len(self.text))
        line = self.text.count("\n", 0, offset) + 1
        line_start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - line_start + 1

    def line_text(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A half-open range ``[start, end)`` of characters in a source."""

    source: Source = field(compare=False, repr=False)
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.source.line_col(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.line_col(self.start)[1]

    def to(self, other: "Span") -> "Span":
        """The span covering both ``self`` and ``other``."""
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Note:
    """A secondary location attached to a diagnostic ("the block opened here")."""

    message: str
    span: Span


@dataclass(frozen=True)
class Diagnostic:
    message: str
    span: Span | None = None
    help: str | None = None
    notes: tuple[Note, ...] = ()
    kind: str = "error"

    def render(self) -> str:
        out = [f"{self.kind}: {self.message}"]
        if self.span is not None:
            out.extend(_excerpt(self.span))
        for note in self.notes:
            out.append(f"note: {note.message}")
            out.extend(_excerpt(note.span))
        if self.help:
            out.append(f"  = help: {self.help}")
        return "\n".join(out)


def _excerpt(span: Span) -> list[str]:
    line, col = span.source.line_col(span.start)
    text = span.source.line_text(line)
    end_line, end_col = span.source.line_col(span.end)
    width = (end_col - col) if end_line == line else len(text) - col + 1
    width = max(width, 1)
    gutter = " " * len(str(line))
    return [
        f"{gutter}--> {span.source.name}:{line}:{col}",
        f"{gutter} |",
        f"{line} | {text}",
        f"{gutter} | {' ' * (col - 1)}{'^' * width}",
    ]


class PPLError(Exception):
    """An error the user caused; ``str(err)`` is the rendered report.

    ``err.diagnostics`` lists every problem found (semantic checks report all
    problems at once). ``err.line`` / ``err.column`` refer to the first one.
    """

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(self.render())

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    @property
    def line(self) -> int | None:
        return self.first.span.line if self.first.span else None

    @property
    def column(self) -> int | None:
        return self.first.span.column if self.first.span else None

    @property
    def filename(self) -> str | None:
        return self.first.span.source.name if self.first.span else None

    def render(self) -> str:
        parts = [d.render() for d in self.diagnostics]
        if len(parts) > 1:
            parts.append(f"{len(parts)} errors")
        return "\n\n".join(parts)


class SyntaxErrorPPL(PPLError):
    """A syntax error: the text is not a program."""


class CheckError(PPLError):
    """Semantic errors found before lowering (all reported together)."""


class CompileError(PPLError):
    """An error found while specialising a program (shapes, static arguments)."""


class DataError(PPLError):
    """Data given from Python does not fit the program (shape, dtype, address)."""


def error(message: str, span: Span | None = None, help: str | None = None,
          notes: Iterable[Note] = (), cls: type[PPLError] = CompileError) -> PPLError:
    """Build (not raise) a one-diagnostic error."""
    return cls(Diagnostic(message, span, help, tuple(notes)))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' help line for a misspelt name, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return f"did you mean '{close[0]}'?" if close else None
