"""A safe interpreter for the subset of TSP (Keithley's Lua) the emulated TSP instruments need.

Never ``eval``: a program message is tokenized and parsed into statements by a small
recursive-descent parser, then run against the instrument's attribute table. Supported::

    statement := path "=" expr            smua.source.levelv = 0.2
               | call                     smua.measure.i(smua.nvbuffer1)
               | "loadscript" NAME        (lines up to "endscript" are stored, not run)
               | "endscript"
    call      := path "(" [expr {"," expr}] ")"
    expr      := ["-"] (NUMBER | STRING | nil | true | false | table | path | call | "(" expr ")")
    table     := "{" [expr {"," expr}] "}"
    path      := NAME {"." NAME | "[" NUMBER "]"}

Statements are separated by whitespace or ``;``. As on the instrument, a whole chunk is compiled
before any of it runs: a syntax error (-285) runs nothing; a runtime error (-286) stops the chunk at
that statement. Errors go to the instrument's error queue, read with ``errorqueue.next()``.

Bounds: a chunk has at most :data:`MAX_TOKENS` tokens; a stored script at most
:data:`MAX_SCRIPT_LINES` lines and :data:`MAX_SCRIPT_CHARS` characters; at most
:data:`MAX_SCRIPTS` scripts are kept; tables hold at most :data:`MAX_TABLE` entries.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .base import EmulatedInstrument
from .scpi import Command, SCPIError

MAX_TOKENS = 200_000
MAX_TABLE = 100_000
MAX_SCRIPT_LINES = 2000
MAX_SCRIPT_CHARS = 1 << 18
MAX_SCRIPTS = 16
#: Nesting of parentheses, tables and unary minus in one expression.
MAX_DEPTH = 32
#: Scripts running scripts (a script that runs itself overflows here, as Lua's stack would).
MAX_CALL_DEPTH = 8
#: Significant digits of printed numbers. The instruments default to 6 (format.asciiprecision);
#: the emulator prints 17 so that a float64 reading survives the trip bit for bit, as its SCPI
#: instruments do (scpi.fmt_reading). format.asciiprecision sets fewer.
DEFAULT_PRECISION = 17

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<string>"[^"\n]*"|'[^'\n]*')
  | (?P<punct>[(){}\[\],=.;-])
""", re.VERBOSE)
_KEYWORDS = {"nil", "true", "false", "loadscript", "endscript"}


class TspError(SCPIError):
    """A TSP error: -285 syntax (nothing ran), -286 runtime (the chunk stopped), -222 range..."""

    @property
    def text(self) -> str:
        """The message as errorqueue.next() reports it: TSP messages stand on their own."""
        return self.detail or super().text


def syntax_error(detail: str) -> TspError:
    return TspError(-285, f"TSP Syntax error at line 1: {detail}")


def runtime_error(detail: str) -> TspError:
    return TspError(-286, f"TSP Runtime error at line 1: {detail}")


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, string, punct, keyword, end
    text: str


def tokenize(chunk: str) -> list[Token]:
    """Tokens of a chunk; -285 on a character that starts no token (or too many tokens)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(chunk):
        m = _TOKEN.match(chunk, pos)
        if m is None:
            raise syntax_error(f"unexpected symbol near {chunk[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind == "space":
            continue
        text = m.group()
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        tokens.append(Token(kind, text))
        if len(tokens) > MAX_TOKENS:
            raise TspError(-225, f"chunk longer than {MAX_TOKENS} tokens")
    tokens.append(Token("end", ""))
    return tokens


# --- syntax tree ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    parts: tuple[str | int, ...]  # names, and integer indices for [n]

    def __str__(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                       for i, p in enumerate(self.parts))


@dataclass(frozen=True)
class Call:
    path: Path
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Table:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Negate:
    operand: Any


@dataclass(frozen=True)
class Assign:
    path: Path
    value: Any


@dataclass(frozen=True)
class LoadScript:
    name: str


@dataclass(frozen=True)
class EndScript:
    pass


class Parser:
    """Recursive descent over the tokens of one chunk."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self, text: str | None = None, kind: str | None = None) -> Token:
        t = self.token
        if (text is not None and t.text != text) or (kind is not None and t.kind != kind):
            want = repr(text) if text is not None else kind
            raise syntax_error(f"{want} expected near {t.text or '<eof>'!r}")
        self.i += 1
        return t

    def accept(self, text: str) -> bool:
        if self.token.text == text and self.token.kind in ("punct", "keyword"):
            self.i += 1
            return True
        return False

    def chunk(self) -> list[Any]:
        statements = []
        while self.token.kind != "end":
            if self.accept(";"):
                continue
            statements.append(self.statement())
        return statements

    def statement(self) -> Any:
        t = self.token
        if t.kind == "keyword" and t.text == "loadscript":
            self.i += 1
            return LoadScript(self.take(kind="name").text)
        if t.kind == "keyword" and t.text == "endscript":
            self.i += 1
            return EndScript()
        if t.kind != "name":
            raise syntax_error(f"unexpected symbol near {t.text or '<eof>'!r}")
        path = self.path()
        if self.accept("="):
            return Assign(path, self.expr())
        if self.token.text == "(":
            return Call(path, self.arguments())
        raise syntax_error(f"'=' expected near {self.token.text or '<eof>'!r}")

    def path(self) -> Path:
        parts: list[str | int] = [self.take(kind="name").text]
        while True:
            if self.accept("."):
                parts.append(self.take(kind="name").text)
            elif self.accept("["):
                index = float(self.take(kind="number").text)
                if not (index.is_integer() and 0 <= index <= MAX_TABLE):  # also inf from "1e99999"
                    raise syntax_error(f"index {index!r} is not an integer in [0, {MAX_TABLE}]")
                parts.append(int(index))
                self.take("]")
            else:
                return Path(tuple(parts))

    def arguments(self) -> tuple[Any, ...]:
        self.take("(")
        args: list[Any] = []
        if not self.accept(")"):
            args.append(self.expr())
            while self.accept(","):
                args.append(self.expr())
            self.take(")")
        return tuple(args)

    def expr(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise syntax_error(f"expression nested deeper than {MAX_DEPTH}")
        try:
            return self._expr()
        finally:
            self.depth -= 1

    def _expr(self) -> Any:
        if self.accept("-"):
            return Negate(self.expr())
        t = self.token
        if t.kind == "number":
            self.i += 1
            return Literal(float(t.text))
        if t.kind == "string":
            self.i += 1
            return Literal(t.text[1:-1])
        if t.kind == "keyword" and t.text in ("nil", "true", "false"):
            self.i += 1
            return Literal({"nil": None, "true": True, "false": False}[t.text])
        if self.accept("{"):
            items: list[Any] = []
            if not self.accept("}"):
                items.append(self.expr())
                while self.accept(","):
                    items.append(self.expr())
                    if len(items) > MAX_TABLE:
                        raise TspError(-225, f"table longer than {MAX_TABLE} entries")
                self.take("}")
            return Table(tuple(items))
        if self.accept("("):
            inner = self.expr()
            self.take(")")
            return inner
        if t.kind == "name":
            path = self.path()
            if self.token.text == "(":
                return Call(path, self.arguments())
            return path
        raise syntax_error(f"unexpected symbol near {t.text or '<eof>'!r}")


def parse(chunk: str) -> list[Any]:
    """The statements of a chunk (TspError -285 on a syntax error)."""
    return Parser(tokenize(chunk)).chunk()


# --- values the instruments expose --------------------------------------------------------------------


@dataclass
class ReadingBuffer:
    """A dedicated reading buffer (smuX.nvbuffer1/2): readings with their source values and times."""

    capacity: int
    readings: list[float] = field(default_factory=list)
    sourcevalues: list[float] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)

    def clear(self) -> None:
        self.readings.clear()
        self.sourcevalues.clear()
        self.timestamps.clear()

    def append(self, reading: float, source: float, interval: float) -> None:
        if len(self.readings) >= self.capacity:
            raise TspError(-225, f"reading buffer full ({self.capacity} readings)")
        t = self.timestamps[-1] + interval if self.timestamps else 0.0
        self.readings.append(reading)
        self.sourcevalues.append(source)
        self.timestamps.append(t)


def number(value: Any, name: str) -> float:
    """A finite number argument, else -286 naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise runtime_error(f"bad argument {name} (a finite number expected, got {value!r})")
    return float(value)


def text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise runtime_error(f"bad argument {name} (string expected, got {value!r})")
    return value


class MultipleValues(list):  # type: ignore[type-arg]
    """What a Lua call returning several values gives; print() shows them tab-separated."""


class TspInstrument(EmulatedInstrument):
    """Base of the emulated TSP instruments: ``*`` common commands, and TSP chunks run by the
    interpreter above against :meth:`tsp_get`, :meth:`tsp_set` and :meth:`tsp_call`, which the
    models extend. Shared here: print, printbuffer, errorqueue, format.asciiprecision,
    waitcomplete, opc, reset, loadscript/endscript and running stored scripts."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Any]] = {}
        self._loading: tuple[str, list[str], int] | None = None  # name, lines, characters
        self.precision = DEFAULT_PRECISION
        self._call_depth = 0
        super().__init__()

    def _system_commands(self) -> list[Command]:
        return []  # no SCPI subsystems on a TSP instrument (SYST:ERR? is a TSP syntax error)

    # -- entry point --------------------------------------------------------------------------------
    def execute(self, message: str) -> str | None:
        if message.lstrip().startswith("*") and self._loading is None:
            return super().execute(message)  # IEEE 488.2 common commands
        output: list[str] = []
        try:
            if self._loading is not None:
                self._script_line(message)
                return None
            statements = parse(message)
            for k, statement in enumerate(statements):
                if isinstance(statement, LoadScript):
                    if len(statements) > 1:
                        raise syntax_error("loadscript must stand on its own line")
                    self._begin_script(statement.name)
                    break
                if isinstance(statement, EndScript):
                    raise syntax_error("endscript without loadscript")
                self.run(statement, output)
        except SCPIError as exc:  # TspError, and the range errors of scpi.Numeric
            self.errors.push(exc.code, exc.text)
        return "\n".join(output) if output else None

    def run(self, statement: Any, output: list[str]) -> None:
        if isinstance(statement, Assign):
            self.tsp_set(statement.path.parts, self.evaluate(statement.value), str(statement.path))
        elif isinstance(statement, Call):
            self.call(statement, output)
        else:  # pragma: no cover - the parser makes only the kinds above
            raise runtime_error(f"cannot run {statement!r}")

    def evaluate(self, node: Any, output: list[str] | None = None) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Negate):
            return -number(self.evaluate(node.operand), "to unary minus")
        if isinstance(node, Table):
            return [self.evaluate(item) for item in node.items]
        if isinstance(node, Path):
            return self.tsp_get(node.parts, str(node))
        if isinstance(node, Call):
            return self.call(node, output if output is not None else [])
        raise runtime_error(f"cannot evaluate {node!r}")  # pragma: no cover

    def call(self, node: Call, output: list[str]) -> Any:
        parts, name = node.path.parts, str(node.path)
        args = [self.evaluate(a, output) for a in node.args]
        if name == "print":
            output.append("\t".join(self.format_value(a) for a in args))
            return None
        if name == "printbuffer":
            output.append(self._printbuffer(args))
            return None
        if len(parts) == 2 and parts[1] == "run" and parts[0] in self.scripts or (
                len(parts) == 1 and parts[0] in self.scripts):
            if args:
                raise runtime_error(f"{name} takes no arguments")
            if self._call_depth >= MAX_CALL_DEPTH:
                raise runtime_error(f"stack overflow (scripts nested deeper than {MAX_CALL_DEPTH})")
            self._call_depth += 1
            try:
                for statement in self.scripts[str(parts[0])]:
                    self.run(statement, output)
            finally:
                self._call_depth -= 1
            return None
        return self.tsp_call(parts, args, name)

    # -- values -------------------------------------------------------------------------------------
    def format_value(self, value: Any) -> str:
        """How print() shows a value (several return values: tab-separated)."""
        if isinstance(value, MultipleValues):
            return "\t".join(self.format_value(v) for v in value)
        if value is None:
            return "nil"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return f"{float(value):.{self.precision - 1}e}"
        if isinstance(value, str):
            return value
        return f"{type(value).__name__}: 0x{id(value) & 0xffffff:06x}"  # Lua prints tables so

    def _printbuffer(self, args: list[Any]) -> str:
        if len(args) < 3:
            raise runtime_error("printbuffer(start, end, buffer, ...) needs a buffer")
        start, end = int(number(args[0], "#1")), int(number(args[1], "#2"))
        columns = []
        for k, buf in enumerate(args[2:]):
            if isinstance(buf, ReadingBuffer):
                buf = buf.readings
            if not isinstance(buf, list):
                raise runtime_error(f"bad argument #{k + 3} to printbuffer (buffer expected)")
            columns.append(buf)
        n = min(len(c) for c in columns)
        if not 1 <= start <= end <= n:
            raise TspError(-222, f"printbuffer: indices {start}..{end} outside 1..{n}")
        return ", ".join(self.format_value(c[i]) for i in range(start - 1, end) for c in columns)

    # -- scripts ------------------------------------------------------------------------------------
    def _begin_script(self, name: str) -> None:
        self._loading = (name, [], 0)

    def _script_line(self, message: str) -> None:
        """One line while a script loads: stored, or at ``endscript`` compiled and kept."""
        assert self._loading is not None
        name, lines, chars = self._loading
        if message.strip() == "endscript":
            self._loading = None
            statements = parse("\n".join(lines))  # compiled now, as the instrument does
            if any(isinstance(s, (LoadScript, EndScript)) for s in statements):
                raise syntax_error("loadscript inside a script")
            if name not in self.scripts and len(self.scripts) >= MAX_SCRIPTS:
                raise TspError(-225, f"script memory full ({MAX_SCRIPTS} scripts)")
            self.scripts[name] = statements
            return
        chars += len(message)
        if len(lines) >= MAX_SCRIPT_LINES or chars > MAX_SCRIPT_CHARS:
            self._loading = None
            raise TspError(-225, f"script {name}: longer than {MAX_SCRIPT_LINES} lines or "
                                 f"{MAX_SCRIPT_CHARS} characters; discarded")
        lines.append(message)
        self._loading = (name, lines, chars)

    # -- the instrument's own names (models extend these) -----------------------------------------
    def tsp_get(self, parts: tuple[str | int, ...], name: str) -> Any:
        if parts == ("errorqueue", "count"):
            return float(len(self.errors))
        if parts == ("format", "asciiprecision"):
            return float(self.precision)
        raise runtime_error(f"attempt to index a nil value ({name})")

    def tsp_set(self, parts: tuple[str | int, ...], value: Any, name: str) -> None:
        if parts == ("format", "asciiprecision"):
            digits = number(value, name)
            if not 1 <= digits <= DEFAULT_PRECISION:
                raise TspError(-222, f"{name}={digits:g} outside [1, {DEFAULT_PRECISION}]")
            self.precision = int(digits)
            return
        raise runtime_error(f"attempt to assign {name} (not a writable attribute)")

    def tsp_call(self, parts: tuple[str | int, ...], args: list[Any], name: str) -> Any:
        if name == "errorqueue.next":
            code, message = self.errors.pop()
            severity = 0 if code == 0 else 2
            return MultipleValues([float(code), "Queue Is Empty" if code == 0 else message,
                                    float(severity), 0.0])
        if name == "errorqueue.clear":
            self.errors.clear()
            return None
        if name in ("waitcomplete", "opc"):
            return None
        if name == "reset":
            self.reset()
            return None
        raise runtime_error(f"attempt to call a nil value (global or field {name!r})")
