"""Source text to AST, with syntax errors a user can read.

One lark parser (LALR) is built from ``grammar.lark`` once and cached. It
uses lark's *basic* lexer rather than the contextual one: the newline rule
looks one token ahead (a newline before ``else`` is dropped), and the
contextual lexer lexes that token in the parser's state before the newline,
which would mislex keywords. With the basic lexer keywords are reserved words,
as in most languages. A post-lexer applies Go's newline rule (see grammar.lark); a
Transformer turns the parse tree into the frozen nodes of ast.py, each with a
span. Every lark exception becomes a :class:`SyntaxErrorPPL` naming what was
expected, in words ("an expression", "'}'"), with a note pointing at an
unclosed bracket when the text ends early.

    >>> prog = parse("gen coin() { p ~ beta(2.0, 2.0) }", "coin.ppl")
    >>> prog.decls[0].name
    'coin'
    >>> parse("gen f() { x ~ }")
    Traceback (most recent call last):
    ...
    ppl.compiler.diagnostics.SyntaxErrorPPL: error: unexpected '}': expected an expression
    ...
"""

from __future__ import annotations

import functools
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken,
                             VisitError)

from . import ast
from .diagnostics import Diagnostic, Note, PPLError, Source, Span, SyntaxErrorPPL

_ENDS_EXPRESSION = {"NAME", "INT", "FLOAT", "STRING", "RPAR", "RSQB", "RBRACE", "TRUE", "FALSE"}
_OPENS_BLOCK_AFTER = {"NAME", "INT", "FLOAT", "STRING", "RPAR", "RSQB", "ELSE", "EXPECT"}
_CLOSERS = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}


class NewlinePostLexer:
    """Keeps a newline only where it ends a statement (Go's rule).

    A newline is a separator when the token before it can end an expression
    and the innermost open bracket is a block's ``{`` (or there is none).
    Inside ``()``, ``[]`` and a record literal's ``{}`` newlines are spaces.
    A newline right before ``else`` is dropped, so ``}`` and ``else`` may sit
    on separate lines.
    """

    always_accept = ("_NL",)

    def process(self, stream):
        stack: list[str] = []  # "(", "[", "block", "record"
        prev: Token | None = None
        pending: Token | None = None
        param_type = in_angles = False  # between 'param' and its '=': '>' ends a constraint
        for tok in stream:
            if tok.type == "_NL":
                in_brackets = stack and stack[-1] != "block"
                ends = prev is not None and (prev.type in _ENDS_EXPRESSION
                                             or (param_type and prev.type == "MORETHAN"))
                if not in_brackets and ends:
                    pending = pending or tok
                    param_type = False
                continue
            if tok.type == "PARAM":
                param_type, in_angles = True, False
            elif param_type and tok.type in ("LESSTHAN", "MORETHAN"):
                in_angles = tok.type == "LESSTHAN"
            elif tok.type == "SEMICOLON" or (tok.type == "EQUAL" and not in_angles):
                param_type = False
            if pending is not None and tok.type != "ELSE":
                yield pending
            pending = None
            if tok.type == "LPAR":
                stack.append("(")
            elif tok.type == "LSQB":
                stack.append("[")
            elif tok.type == "LBRACE":
                opens_block = prev is not None and prev.type in _OPENS_BLOCK_AFTER
                stack.append("block" if opens_block else "record")
            elif tok.type in _CLOSERS and stack:
                stack.pop()
            prev = tok
            yield tok
        if pending is not None:
            yield pending


@functools.lru_cache(maxsize=None)
def grammar_text() -> str:
    return resources.files(__package__).joinpath("grammar.lark").read_text()


@functools.lru_cache(maxsize=None)
def lark_parser(strict: bool = False) -> Lark:
    """The cached parser. ``strict=True`` makes lark reject grammar conflicts.

    Building the LALR tables takes about 0.1-0.3 s, paid by the first compile in
    every process; lark's grammar cache (``cache=True``: a file in the temporary
    directory, keyed by a hash of the grammar text, the options and lark's
    version) makes that a few milliseconds. A missing or unwritable cache only
    costs the build.
    """
    return Lark(grammar_text(), parser="lalr", lexer="basic", postlex=NewlinePostLexer(),
                propagate_positions=True, maybe_placeholders=True, strict=strict, cache=True)


def parse(text: str, name: str = "<string>") -> ast.Program:
    """Parse a whole source text into an :class:`ast.Program`."""
    source = Source(name, text)
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(source, e) from None
    except RecursionError:
        raise _too_deep(source) from None
    try:
        return ToAst(source).transform(tree)
    except RecursionError:
        raise _too_deep(source) from None
    except VisitError as e:  # lark wraps what the Transformer raises
        if isinstance(e.orig_exc, RecursionError):
            raise _too_deep(source) from None
        if isinstance(e.orig_exc, PPLError):
            raise e.orig_exc from None
        raise


def _too_deep(source: Source) -> SyntaxErrorPPL:
    return SyntaxErrorPPL(Diagnostic("the program nests too deeply to parse", source.span(0, 0),
                                     help="split deeply nested expressions or blocks into "
                                          "several statements"))


# ---------------------------------------------------------------- tree -> AST


class ToAst(Transformer):
    def __init__(self, source: Source):
        super().__init__(visit_tokens=False)
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return self.source.span(0, 0)
        return self.source.span(meta.start_pos, meta.end_pos)

    def _tok(self, tok: Token) -> Span:
        return self.source.span(tok.start_pos, tok.end_pos)

    @v_args(meta=True)
    def start(self, meta, children):
        return ast.Program(tuple(children), self.source.name)

    def _decl(kind):  # noqa: N805 — a factory for the three declaration rules
        @v_args(meta=True)
        def build(self, meta, children):
            name, args, body = children
            return ast.Decl(kind, str(name), args, body, self._span(meta), self._tok(name))
        return build

    gen_decl = _decl("gen")
    fn_decl = _decl("fn")
    objective_decl = _decl("objective")

    def arglist(self, children):
        return tuple(children)

    @v_args(meta=True)
    def arg(self, meta, children):
        return ast.Arg(str(children[0]), children[1] if len(children) > 1 else None, self._span(meta))

    @v_args(meta=True)
    def type(self, meta, children):
        constraint, dims = (), None
        for c in children[1:]:
            if c[0] == "constraint":
                constraint = c[1]
            else:
                dims = c[1]
        return ast.TypeAnn(str(children[0]), constraint, dims, self._span(meta))

    def type_name(self, children):
        return str(children[0])

    def constraint(self, children):
        return ("constraint", tuple(children))

    def constraint_item(self, children):
        return (str(children[0]), children[1])

    def signed_number(self, children):
        text = "".join(str(c) for c in children)
        return float(text) if any(ch in text for ch in ".eE") else int(text)

    def dims(self, children):
        return ("dims", tuple(children))

    def dim_int(self, children):
        return int(children[0])

    def dim_name(self, children):
        return str(children[0])

    @v_args(meta=True)
    def block(self, meta, children):
        return ast.Block(tuple(c for c in children if c is not None), self._span(meta))

    @v_args(meta=True)
    def sample_stmt(self, meta, children):
        target, value, address, shares, estimator, mask = children
        shared, shares_span = shares if shares is not None else (None, None)
        return ast.Sample(str(target), value, address, estimator, self._span(meta), self._tok(target),
                          mask, shared, shares_span)

    def mask(self, children):
        return children[0]

    @v_args(meta=True)
    def shares(self, meta, children):
        (tok,) = children
        name = _unquote(tok, self.source) if tok.type == "STRING" else str(tok)
        return name, self._span(meta)

    def address(self, children):
        return _unquote(children[0], self.source)

    @v_args(meta=True)
    def estimator(self, meta, children):
        args, kwargs = _split_args(children[1] if len(children) > 1 else [])
        return ast.Estimator(str(children[0]), args, kwargs, self._span(meta))

    @v_args(meta=True)
    def assign_stmt(self, meta, children):
        (names, destructure), value = children
        return ast.Assign(names, destructure, value, self._span(meta))

    @v_args(meta=True)
    def targets(self, meta, children):
        parenthesised = self.source.text[meta.start_pos] == "("
        return tuple(str(c) for c in children), parenthesised or len(children) > 1

    @v_args(meta=True)
    def plate_stmt(self, meta, children):
        return ast.Plate(str(children[0]), children[1], children[2], self._span(meta))

    @v_args(meta=True)
    def for_stmt(self, meta, children):
        return ast.For(str(children[0]), children[1], children[2], self._span(meta))

    @v_args(meta=True)
    def if_stmt(self, meta, children):
        cond, then = children[0], children[1]
        orelse = children[2] if len(children) > 2 else None
        if isinstance(orelse, ast.If):
            orelse = ast.Block((orelse,), orelse.span)
        return ast.If(cond, then, orelse, self._span(meta))

    @v_args(meta=True)
    def factor_stmt(self, meta, children):
        return ast.Factor(children[0], self._span(meta))

    @v_args(meta=True)
    def param_stmt(self, meta, children):
        name, type_, init = children
        return ast.ParamDecl(str(name), type_, init, self._span(meta))

    @v_args(meta=True)
    def return_stmt(self, meta, children):
        return ast.Return(children[0], self._span(meta))

    # -- expressions

    @v_args(meta=True)
    def condition(self, meta, children):
        return ast.Condition(children[0], children[1], self._span(meta))

    def _binary_as(op):  # noqa: N805
        @v_args(meta=True)
        def build(self, meta, children):
            return ast.Binary(op, children[0], children[-1], self._span(meta))
        return build

    logical_or = _binary_as("or")
    logical_and = _binary_as("and")
    power = _binary_as("**")

    @v_args(meta=True)
    def logical_not(self, meta, children):
        return ast.Unary("not", children[0], self._span(meta))

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Unary("neg", children[0], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta, children):
        return ast.Binary(children[1], children[0], children[2], self._span(meta))

    binary = compare

    def comp_op(self, children):
        return str(children[0])

    add_op = mul_op = comp_op

    @v_args(meta=True)
    def call(self, meta, children):
        args, kwargs = _split_args(children[1])
        return ast.Call(children[0], args, kwargs, self._span(meta))

    def call_args(self, children):
        return list(children)

    @v_args(meta=True)
    def kwarg(self, meta, children):
        return ast.Keyword(str(children[0]), children[1], self._span(meta))

    @v_args(meta=True)
    def index(self, meta, children):
        return ast.Index(children[0], tuple(children[1]), self._span(meta))

    def indices(self, children):
        return list(children)

    @v_args(meta=True)
    def slice(self, meta, children):
        return ast.Slice(children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def new_axis(self, meta, children):
        return ast.NewAxis(self._span(meta))

    @v_args(meta=True)
    def field(self, meta, children):
        return ast.Field(children[0], str(children[1]), self._span(meta))

    @v_args(meta=True)
    def name(self, meta, children):
        return ast.Name(str(children[0]), self._span(meta))

    @v_args(meta=True)
    def int_lit(self, meta, children):
        return ast.Literal(int(children[0]), self._span(meta))

    @v_args(meta=True)
    def float_lit(self, meta, children):
        return ast.Literal(float(children[0]), self._span(meta))

    @v_args(meta=True)
    def string_lit(self, meta, children):
        return ast.Literal(_unquote(children[0], self.source), self._span(meta))

    @v_args(meta=True)
    def true_lit(self, meta, children):
        return ast.Literal(True, self._span(meta))

    @v_args(meta=True)
    def false_lit(self, meta, children):
        return ast.Literal(False, self._span(meta))

    @v_args(meta=True)
    def tuple_lit(self, meta, children):
        return ast.TupleLit(tuple(children), self._span(meta))

    @v_args(meta=True)
    def array_lit(self, meta, children):
        return ast.ArrayLit(tuple(children), self._span(meta))

    @v_args(meta=True)
    def record_lit(self, meta, children):
        return ast.RecordLit(tuple(children), self._span(meta))

    def record_field(self, children):
        key = children[0]
        return (_unquote(key, self.source) if key.type == "STRING" else str(key), children[1])

    @v_args(meta=True)
    def expect(self, meta, children):
        return ast.Expect(children[0], self._span(meta))


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"'}


def _unquote(tok: Token, source: Source) -> str:
    """The text of a STRING token with its escapes resolved.

    The grammar puts a character after every backslash in a string.
    """
    body = str(tok)[1:-1]
    parts, i = [], 0
    while i < len(body):
        if body[i] != "\\":
            parts.append(body[i])
            i += 1
            continue
        if body[i + 1] not in _ESCAPES:
            start = tok.start_pos + 1 + i
            raise SyntaxErrorPPL(Diagnostic(
                f"unknown escape '\\{body[i + 1]}' in a string", source.span(start, start + 2),
                help="the escapes are \\n, \\t, \\r, \\0, \\\\ and \\\""))
        parts.append(_ESCAPES[body[i + 1]])
        i += 2
    return "".join(parts)


def _split_args(items):
    args = tuple(a for a in items if not isinstance(a, ast.Keyword))
    kwargs = tuple(a for a in items if isinstance(a, ast.Keyword))
    return args, kwargs


# ---------------------------------------------------------------- syntax errors

_WORDS = {
    "NAME": "a name", "INT": "a number", "FLOAT": "a number", "STRING": "a string",
    "_NL": "a newline", "$END": "the end of the file",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "COLON": "':'", "SEMICOLON": "';'", "EQUAL": "'='", "TILDE": "'~'",
    "DOT": "'.'", "VBAR": "'|'", "MORETHAN": "'>'", "LESSTHAN": "'<'",
}
# Terminals that can start an expression: listed as "an expression" rather than one by one.
_EXPRESSION_START = {"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "LBRACE", "MINUS", "PLUS",
                     "NOT", "TRUE", "FALSE", "EXPECT"}
# Operator terminals, by their text: lark names some of them __ANON_n.
_OPERATOR_TEXTS = {"+", "-", "*", "/", "//", "%", "@", "**", "==", "!=", "<", ">", "<=", ">=",
                   "and", "or", "|", ".", "(", "["}
# Terminals that can start a statement, and the declaration keywords.
_STATEMENT_START = {"NAME", "LPAR", "FACTOR", "FOR", "IF", "PARAM", "PLATE", "RETURN"}
_DECLARATION_START = {"GEN", "FN", "OBJECTIVE"}
_SEPARATORS = {"_NL", "SEMICOLON"}


def _terminal_text(name: str) -> str | None:
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return None
    return pattern.value if pattern.type == "str" else None


def _is_keyword(token_type: str) -> bool:
    text = _terminal_text(token_type)
    return text is not None and text.isidentifier()


def _describe_terminal(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def expected_words(expected) -> list[str]:
    """Turn lark's set of expected terminals into phrases a user reads."""
    names = set(expected)
    words = []
    if _DECLARATION_START <= names:
        words.append("a declaration ('gen', 'fn' or 'objective')")
        names -= _DECLARATION_START | _SEPARATORS
    if {"FACTOR", "PLATE", "PARAM", "RETURN"} <= names:
        words.append("a statement")
        names -= _STATEMENT_START | _SEPARATORS
    if "NAME" in names and len(names & _EXPRESSION_START) >= 4:
        words.append("an expression")
        names -= _EXPRESSION_START
    operators = {n for n in names if _terminal_text(n) in _OPERATOR_TEXTS}
    if len(operators) >= 4:
        words.append("an operator")
        names -= operators
    words.extend(sorted({_describe_terminal(n) for n in names}))
    return words


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    if tok.type in ("NAME", "INT", "FLOAT"):
        return f"'{tok.value}'"
    return f"'{tok.value}'"


def _syntax_error(source: Source, e: UnexpectedInput) -> SyntaxErrorPPL:
    if isinstance(e, UnexpectedCharacters):
        char = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else ""
        span = source.span(e.pos_in_stream, e.pos_in_stream + 1)
        help_ = {"'": "strings use double quotes",
                 '"': "this string is never closed (a string ends on the line it starts)"}.get(char)
        return SyntaxErrorPPL(Diagnostic(f"unexpected character {char!r}", span, help=help_))
    if isinstance(e, UnexpectedToken):
        tok = e.token
        try:
            expected = e.interactive_parser.accepts()
        except Exception:  # accepts() replays the parser; fall back to lark's own set
            expected = e.expected
        expected = {t for t in expected if t != "$END"} or set(e.expected)
        at_end = tok.type == "$END"
        if at_end or tok.end_pos is None:
            pos = len(source.text.rstrip())
            span = source.span(pos, pos)
        else:
            span = source.span(tok.start_pos, tok.end_pos)
        words = expected_words(expected)
        message = f"unexpected {_describe_token(tok)}"
        if words:
            message += ": expected " + _join_or(words)
        if at_end:
            notes = _unclosed_notes(source)
        elif tok.type in _CLOSERS:
            notes = _unclosed_notes(source, tok.start_pos, tok.type)
        elif tok.type in _DECLARATION_START:  # a declaration inside a block: a '}' is missing
            notes = _unclosed_notes(source, tok.start_pos)
        else:  # a bracket left open on an earlier line
            notes = tuple(n for n in _unclosed_notes(source, tok.start_pos)
                          if "block" not in n.message and n.span.line < span.line)
        help_ = _syntax_help(source, tok, expected)
        return SyntaxErrorPPL(Diagnostic(message, span, help=help_, notes=notes))
    if isinstance(e, UnexpectedEOF):
        pos = len(source.text.rstrip())
        words = expected_words(e.expected)
        message = "unexpected end of file" + (": expected " + _join_or(words) if words else "")
        return SyntaxErrorPPL(Diagnostic(message, source.span(pos, pos), notes=_unclosed_notes(source)))
    return SyntaxErrorPPL(Diagnostic("syntax error", source.span(0, 0)))


def _syntax_help(source: Source, tok: Token, expected: set[str]) -> str | None:
    """A hint for the common slips: '=' for '==', keywords as names, '+='."""
    text = _terminal_text(tok.type) if tok.type != "$END" else None
    expected_texts = {_terminal_text(t) for t in expected}
    if text == "=" and "==" in expected_texts:
        return "to compare two values, use '=='"
    if text == "==" and "=" in expected_texts:
        return "to assign a value, use '='"
    if tok.type == "ELSE":
        return "'else' must follow the '}' that closes an 'if' block"
    if tok.type in _DECLARATION_START and "RBRACE" in expected:
        return "declarations cannot be nested: is a '}' missing above?"
    line_before = source.text[source.text.rfind("\n", 0, tok.start_pos or 0) + 1:tok.start_pos or 0]
    if text in ("at", "with") and "~" in line_before and " if " in line_before:
        return (f"a mask comes last: write '{text} ...' before 'if', as in "
                f"'x ~ d(...) {text} ... if m'")
    if text == "None":
        return "'None' is only an index, a new axis of size 1 as in x[:, None]"
    if tok.type != "NAME" and _is_keyword(tok.type) and "NAME" in expected:
        return f"'{tok.value}' is a keyword and cannot be used as a name"
    before = source.text[:tok.start_pos or 0].rstrip()
    word = before[len(before.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")):]
    if text in ("=", "~", ",", ":") and word and word in _keywords():
        return f"'{word}' is a keyword and cannot be used as a name"
    if text in ("+", "-", "*", "/") and source.text[tok.end_pos:tok.end_pos + 1] == "=":
        return (f"there is no '{text}=': write 'x = x {text} ...'; to add to the log density, "
                "use 'factor'")
    if tok.type == "NAME" and _DECLARATION_START <= expected:
        return "statements belong inside a declaration: 'gen', 'fn' or 'objective'"
    if tok.type == "RBRACE" and _DECLARATION_START <= expected:
        return "this '}' has no open block to close"
    if before.endswith("~") and "NAME" in expected:
        return "write what to draw from after '~', like 'x ~ normal(0.0, 1.0)'"
    if word in ("return", "factor") and "NAME" in expected:
        return ("'return' needs the value to return" if word == "return"
                else "'factor' needs the value to add to the log density")
    if text == "(" and expected == {"COMMA", "EQUAL", "TILDE"}:
        return "a call is not a statement on its own: use its value, as in 'y = f(...)'"
    line_start = source.text.rfind("\n", 0, tok.start_pos or 0) + 1
    first_on_line = not source.text[line_start:tok.start_pos or 0].strip()
    if text in _OPERATOR_TEXTS - {"(", "["} and first_on_line and "NAME" in expected:
        return ("a line cannot start with an operator: to continue an expression on the next "
                "line, end this line with the operator")
    if tok.type == "_NL" and expected == {"LBRACE"}:
        return "a block's '{' must be on the same line as the statement or declaration it opens"
    if tok.type in _EXPRESSION_START and "COMMA" in expected and not first_on_line:
        return "is a ',' missing before it?"
    if tok.type in _STATEMENT_START and "SEMICOLON" in expected:
        return "separate statements with a newline or ';'"
    return None


@functools.lru_cache(maxsize=None)
def _keywords() -> frozenset[str]:
    return frozenset(t.pattern.value for t in lark_parser().terminals
                     if t.pattern.type == "str" and t.pattern.value.isidentifier())


def _join_or(words: list[str]) -> str:
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _unclosed_notes(source: Source, end: int | None = None, closer: str | None = None
                    ) -> tuple[Note, ...]:
    """Point at the innermost bracket still open at ``end`` (default: the end of the text).

    With ``closer`` (the type of the unexpected closing token there), only an
    open bracket that ``closer`` does not match is worth a note.
    """
    stack: list[tuple[str, int]] = []
    text, i = source.text[:end], 0
    pairs = {")": "(", "]": "[", "}": "{"}
    while i < len(text):
        ch = text[i]
        if ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}" and stack and stack[-1][0] == pairs[ch]:
            stack.pop()
        i += 1
    if not stack:
        return ()
    ch, pos = stack[-1]
    if closer is not None and _CLOSERS[closer] == {"(": "LPAR", "[": "LSQB", "{": "LBRACE"}[ch]:
        return ()
    never = "never closed" if end is None else "not closed"
    what = {"{": f"this block, opened here, is {never}", "(": f"this '(' is {never}",
            "[": f"this '[' is {never}"}[ch]
    return (Note(what, source.span(pos, pos + 1)),)
