"""Property tests: whatever text it is given, the compiler raises only ``ppl.PPLError``.

A user must never see a lark exception, a ``RecursionError``, a JAX error or
a ``KeyError`` from inside the compiler: every problem in a program is a
:class:`ppl.PPLError` with a message (and, when it has a place in the
source, a line, a column and a caret). Hypothesis feeds ``ppl.compile``:

- arbitrary printable text, and arbitrary unicode;
- token soups built from the language's own keywords, operators, names,
  numbers and strings (these get past the lexer and deep into the parser);
- the same soups inside a declaration's braces (these reach the checker);
- mutations of the good corpus: a character span or a token deleted,
  duplicated, replaced or swapped. A mutant that still compiles is also
  lowered at the good program's entry point (``GenerativeFunction.ir``), so
  the lowering and the IR passes see near-miss programs too.

Each test runs a bounded number of examples with no deadline, so the whole
module stays within a few seconds per test on a small machine.
"""

from __future__ import annotations

import ast as pyast
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppl
from ppl.compiler.parser import lark_parser

HERE = Path(__file__).parent
GOOD = {p.name: p.read_text() for p in sorted((HERE / "good").glob("*.ppl"))}

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The language's fixed tokens, read from the grammar so new keywords are fuzzed too.
LITERAL_TOKENS = sorted(t.pattern.value for t in lark_parser().terminals if t.pattern.type == "str")
NAMES = ["x", "y", "n", "i", "k", "mu", "p", "q", "t", "f", "model", "guide", "normal",
         "bernoulli", "beta", "categorical", "poisson", "gamma", "sum", "size", "shape", "zeros",
         "exp", "log", "logsumexp", "where", "sim", "density", "retval", "glorot", "normal_init",
         "real", "int", "bool", "simplex", "reparam", "reinforce", "enum", "mvd", "pi", "inf",
         "lower", "upper", "loc", "scale", "logits", "probs", "baseline", "elbo", "iwelbo"]
NUMBERS = ["0", "1", "2", "3", "10", "-1", "0.5", "1.0", "2.", ".5", "1e3", "1e-3", "99999999999"]
STRINGS = ['"x"', '"y"', '"a/b"', '""', '"\\n"', '"\\x"', '"\\\\"', '"é"', '"p"']
TOKENS = LITERAL_TOKENS + NAMES + NUMBERS + STRINGS + ["\n", ";", "#", "'", "$", "\\"]
SEPARATORS = [" ", " ", " ", "", "\n"]

_TOKEN = re.compile(r'"[^"\n]*"|[A-Za-z_]\w*|\d+\.?\d*(?:[eE][-+]?\d+)?|\*\*|[=!<>]=|#[^\n]*|\n|\S')
_ENTRY = re.compile(r"#\s*entry:\s*([A-Za-z_]\w*)\((.*)\)\s*$")


def compiles_or_raises_ppl_error(text: str) -> ppl.Module | None:
    """Compile ``text``: the module, or None after checking the PPLError raised."""
    try:
        return ppl.compile(text, "fuzz.ppl")
    except ppl.PPLError as err:
        check_error(err)
        return None


def check_error(err: ppl.PPLError) -> None:
    text = str(err)
    assert text.startswith("error: ")
    assert err.diagnostics
    if err.first.span is not None:
        assert err.line is not None and err.column is not None
        assert "^" in text


# ---------------------------------------------------------------- strategies

soup = st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SEPARATORS)), max_size=60).map(
    lambda pairs: "".join(tok + sep for tok, sep in pairs))

DECLARATION_HEADS = ["gen model(n: int, x, y: real[3]) {\n", "fn helper(v, k: int) {\n",
                     "objective obj(p: gen, q: gen, K: int) {\n    return expect {\n"]


@st.composite
def inside_a_declaration(draw) -> str:
    head = draw(st.sampled_from(DECLARATION_HEADS))
    closing = "\n}" * head.count("{")
    return head + draw(soup) + closing


@st.composite
def mutant(draw) -> tuple[str, str]:
    """A good program with one to three random edits: (its name, the mutated text)."""
    name = draw(st.sampled_from(sorted(GOOD)))
    text = GOOD[name]
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            text = edit_characters(draw, text)
        else:
            text = edit_tokens(draw, text)
    return name, text


def edit_characters(draw, text: str) -> str:
    a = draw(st.integers(0, len(text)))
    b = min(len(text), a + draw(st.integers(0, 12)))
    op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
    if op == "delete":
        return text[:a] + text[b:]
    if op == "duplicate":
        return text[:a] + text[a:b] * 2 + text[b:]
    if op == "insert":
        return text[:a] + draw(st.sampled_from(TOKENS)) + text[a:]
    c = draw(st.integers(0, len(text)))
    d = min(len(text), c + draw(st.integers(0, 12)))
    if c < a:
        a, b, c, d = c, d, a, b
    if b > c:  # overlapping spans: move the first after the second instead
        return text[:a] + text[b:] + text[a:b]
    return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]


def edit_tokens(draw, text: str) -> str:
    tokens = _TOKEN.findall(text)
    if not tokens:
        return text
    i = draw(st.integers(0, len(tokens) - 1))
    op = draw(st.sampled_from(["delete", "duplicate", "replace", "swap"]))
    if op == "delete":
        del tokens[i]
    elif op == "duplicate":
        tokens.insert(i, tokens[i])
    elif op == "replace":
        tokens[i] = draw(st.sampled_from(TOKENS + tokens))
    else:
        j = draw(st.integers(0, len(tokens) - 1))
        tokens[i], tokens[j] = tokens[j], tokens[i]
    return "".join(t if t == "\n" else t + " " for t in tokens)


def entry_point(text: str):
    m = _ENTRY.match(text.split("\n", 1)[0])
    if m is None:
        return None
    return m.group(1), (pyast.literal_eval(f"({m.group(2)},)") if m.group(2).strip() else ())


# ---------------------------------------------------------------- properties


@FUZZ
@given(st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=300))
def test_printable_text(text):
    compiles_or_raises_ppl_error(text)


@FUZZ
@given(st.text(max_size=100))
def test_unicode_text(text):
    compiles_or_raises_ppl_error(text)


@FUZZ
@given(soup)
def test_token_soup(text):
    compiles_or_raises_ppl_error(text)


@FUZZ
@given(inside_a_declaration())
def test_token_soup_inside_a_declaration(text):
    compiles_or_raises_ppl_error(text)


@FUZZ
@given(mutant())
def test_mutated_good_programs(case):
    name, text = case
    module = compiles_or_raises_ppl_error(text)
    entry = entry_point(GOOD[name])
    if module is None or entry is None:
        return
    decl = module.declarations.get(entry[0])
    if decl is None or decl.kind != "gen":
        return
    try:
        getattr(module, entry[0])(*entry[1]).ir()
    except ppl.PPLError as err:
        check_error(err)


def test_deep_nesting_is_a_ppl_error():
    for depth in (50, 2000):
        for text in ("fn f() { return " + "(" * depth + "1" + ")" * depth + " }",
                     "fn f() { return " + "-" * depth + "1 }",
                     "fn f() { return " + "1 ** " * depth + "1 }",
                     "fn f() { return " + "[" * depth + "1" + "]" * depth + " }",
                     "gen f() { " + "if true { " * depth + "}" * depth + " }",
                     "gen f() { " + "x = 1\n" * depth + " }"):
            compiles_or_raises_ppl_error(text)
