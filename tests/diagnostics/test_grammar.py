"""The grammar builds without conflicts, and the parser's translation tables stay in step with it.

``lark_parser(strict=True)`` makes lark reject any shift/reduce or
reduce/reduce conflict (and, with ``interegular`` installed, terminals that
collide), so a change to ``grammar.lark`` that makes it ambiguous fails here
rather than parsing some programs in a surprising way.
"""

from __future__ import annotations

import pytest
from lark import Lark
from lark.exceptions import GrammarError

from ppl.compiler import parser
from ppl.compiler.parser import lark_parser


def test_grammar_has_no_conflicts():
    strict = lark_parser(strict=True)
    assert isinstance(strict, Lark)
    assert strict.parse("gen f() { x ~ normal(0.0, 1.0) }").data == "start"


def test_strict_mode_rejects_a_conflict():
    """Guards the test above: strict mode must really catch an ambiguous grammar."""
    with pytest.raises(GrammarError, match="conflict"):
        Lark('start: e\ne: e "+" e | "x"\n', parser="lalr", strict=True)


def test_parser_is_cached():
    assert lark_parser() is lark_parser()


def test_every_terminal_has_a_readable_description():
    """Syntax errors list expected terminals in words: none may leak as a lark name."""
    for terminal in lark_parser().terminals:
        if terminal.name in ("WS", "COMMENT"):
            continue
        words = parser.expected_words({terminal.name})
        assert words and not any("__" in w or w.isupper() for w in words), (terminal.name, words)


def test_keywords_are_reserved_words():
    keywords = {t.pattern.value for t in lark_parser().terminals
                if t.pattern.type == "str" and t.pattern.value.isidentifier()}
    assert {"gen", "fn", "objective", "plate", "for", "if", "else", "param", "factor", "return",
            "expect", "with", "at", "in", "and", "or", "not", "true", "false"} <= keywords
