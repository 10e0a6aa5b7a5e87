"""The errors ``ppl`` raises for anything a user can cause.

All are :class:`PPLError` s: ``str(err)`` shows the message with the file,
line, column and a caret under the source; ``err.diagnostics`` lists every
problem found.

    >>> import ppl
    >>> try:
    ...     ppl.compile("gen f() { x ~ normall(0.0, 1.0) }")
    ... except ppl.PPLError as err:
    ...     print(err.line, err.column)
    1 15
"""

from ppl.compiler.diagnostics import (CheckError, CompileError, DataError, Diagnostic, Note,
                                      PPLError, Source, Span, SyntaxErrorPPL, did_you_mean)

__all__ = ["PPLError", "SyntaxErrorPPL", "CheckError", "CompileError", "DataError", "Diagnostic",
           "Note", "Source", "Span", "did_you_mean"]
