"""Sans-I/O SCPI parsing for the emulated instruments.

Bytes never appear here: a server hands one program message (a line without its terminator) to
:meth:`CommandSet.execute`, which returns the response text (or ``None`` when the message held no
query) and queues errors on the instrument's :class:`ErrorQueue`, exactly as IEEE 488.2 / SCPI-1999
instruments do. Nothing here knows about sockets, asyncio or the array.

Header patterns are written in the manuals' notation::

    "[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]"
    ":OUTPut[1|2][:STATe]"

Upper-case letters form the short mnemonic, ``[...]`` marks an optional node, and a bracketed
digit group after a mnemonic (``[1]``, ``[1|2]``) says that node takes a numeric suffix, the first
listed value being the default.
"""
from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# --- errors ---------------------------------------------------------------------------------------

#: Standard SCPI-1999 error numbers and texts used by the emulated instruments.
ERROR_TEXT: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -223: "Too much data",
    -224: "Illegal parameter value",
    -225: "Out of memory",
    -230: "Data corrupt or stale",
    -285: "Program syntax error",
    -286: "Program runtime error",
    -350: "Queue overflow",
    -410: "Query INTERRUPTED",
}


class SCPIError(Exception):
    """Raised by a command handler; the executor queues it and carries on with the next command."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code},{ERROR_TEXT.get(code, 'Error')}{'; ' + detail if detail else ''}")

    @property
    def text(self) -> str:
        """The message as :SYST:ERR? reports it (without the number)."""
        base = ERROR_TEXT.get(self.code, "Error")
        return f"{base}; {self.detail}" if self.detail else base


#: Longest error description kept: SCPI-1999 (21.8.4) allows 255 characters for the
#: description plus device-dependent information, so an echoed 1 MB header is not stored whole.
MAX_ERROR_TEXT = 255


class ErrorQueue:
    """First-in first-out error/event queue (SCPI-1999 vol. 1, 21.8).

    Holds at most ``size`` entries; on overflow the newest entry is replaced by -350, as the
    standard requires, so the oldest (usually most telling) errors survive.
    """

    def __init__(self, size: int = 10) -> None:
        self.size = size
        self._items: deque[tuple[int, str]] = deque()

    def push(self, code: int, text: str) -> None:
        """Queue an error; ``text`` is cut to MAX_ERROR_TEXT characters (SCPI-1999 21.8.4)."""
        if len(text) > MAX_ERROR_TEXT:
            text = text[:MAX_ERROR_TEXT - 3] + "..."
        if len(self._items) >= self.size:
            self._items[-1] = (-350, ERROR_TEXT[-350])
            return
        self._items.append((code, text))

    def pop(self) -> tuple[int, str]:
        """Oldest entry, or ``(0, "No error")`` when empty."""
        return self._items.popleft() if self._items else (0, ERROR_TEXT[0])

    def clear(self) -> None:
        self._items.clear()

    def newest(self) -> tuple[int, str]:
        """Newest entry without removing it, or ``(0, "No error")`` (KXCI's "last error")."""
        return self._items[-1] if self._items else (0, ERROR_TEXT[0])

    def __len__(self) -> int:
        return len(self._items)


# --- header patterns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One mnemonic of a header pattern."""

    long: str
    short: str
    optional: bool
    suffixes: tuple[int, ...]  # allowed numeric suffixes; empty: none allowed

    def accepts(self, mnemonic: str, suffix: int | None) -> bool:
        m = mnemonic.upper()
        if m != self.short and m != self.long.upper():
            return False
        if suffix is None:
            return True
        return suffix in self.suffixes


_NODE_RE = re.compile(r"(\[)?:?([A-Za-z*][A-Za-z]*)(?:\[([0-9|]+)\])?(\])?")


def compile_pattern(pattern: str) -> tuple[Node, ...]:
    """Turn a manual-style header pattern into nodes (see the module docstring)."""
    nodes: list[Node] = []
    pos = 0
    text = pattern.strip()
    while pos < len(text):
        m = _NODE_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad header pattern {pattern!r} at offset {pos}")
        opening, name, suffix, closing = m.groups()
        # "[:SOURce[1]]" closes two brackets; the inner one belongs to the suffix group above.
        end = m.end()
        optional = opening is not None
        if optional and closing is None:
            raise ValueError(f"unbalanced brackets in pattern {pattern!r}")
        short = "".join(c for c in name if c.isupper() or c == "*")
        suffixes = tuple(int(s) for s in suffix.split("|")) if suffix else ()
        nodes.append(Node(name, short, optional, suffixes))
        pos = end
    return tuple(nodes)


_HEADER_NODE_RE = re.compile(r"^([A-Za-z][A-Za-z_]*?)(\d+)?$")


def split_header(header: str) -> list[tuple[str, int | None]]:
    """``":SOUR1:VOLT"`` -> ``[("SOUR", 1), ("VOLT", None)]``; raises SCPIError(-102) if malformed."""
    parts = header.strip(":").split(":")
    out: list[tuple[str, int | None]] = []
    for part in parts:
        m = _HEADER_NODE_RE.match(part)
        if m is None:
            raise SCPIError(-102, f"bad header {header!r}")
        out.append((m.group(1), int(m.group(2)) if m.group(2) else None))
    return out


def match_nodes(
    pattern: tuple[Node, ...], header: list[tuple[str, int | None]]
) -> list[int] | None:
    """Match a split header against a pattern; returns the suffix of every pattern node (default
    filled in), or None. Optional nodes are tried both present and absent (backtracking)."""

    def walk(i: int, j: int) -> list[int] | None:
        if i == len(pattern):
            return [] if j == len(header) else None
        node = pattern[i]
        if j < len(header):
            mnemonic, suffix = header[j]
            if node.accepts(mnemonic, suffix):
                rest = walk(i + 1, j + 1)
                if rest is not None:
                    default = node.suffixes[0] if node.suffixes else 0
                    return [suffix if suffix is not None else default, *rest]
        if node.optional:
            rest = walk(i + 1, j)
            if rest is not None:
                return [node.suffixes[0] if node.suffixes else 0, *rest]
        return None

    return walk(0, 0)


# --- splitting program messages -------------------------------------------------------------------


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` except inside quotes or parentheses (channel lists like ``(@1,2)``)."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_arguments(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    return [a.strip() for a in split_outside_quotes(text, ",")]


# --- parameter parsing ----------------------------------------------------------------------------

_SI_PREFIX = {"P": 1e-12, "N": 1e-9, "U": 1e-6, "M": 1e-3, "K": 1e3, "MA": 1e6, "G": 1e9}
_NUMBER_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")


@dataclass(frozen=True)
class Numeric:
    """A numeric parameter's allowed range and keyword values (MINimum, MAXimum, DEFault)."""

    minimum: float
    maximum: float
    default: float
    unit: str = ""  # base unit accepted as a suffix, e.g. "V", "A", "S", "HZ"
    integer: bool = False

    def parse(self, text: str, name: str) -> float:
        """Parse ``text`` to a float within range; raise -104/-222 otherwise."""
        word = text.strip().upper()
        if word in ("MIN", "MINIMUM"):
            return self.minimum
        if word in ("MAX", "MAXIMUM"):
            return self.maximum
        if word in ("DEF", "DEFAULT"):
            return self.default
        m = _NUMBER_RE.match(text.strip())
        if m is None:
            raise SCPIError(-104, f"{name}: expected a number, got {text!r}")
        value = float(m.group(1))
        suffix = m.group(2).upper()
        if suffix:
            value *= self._suffix_scale(suffix, name)
        if not math.isfinite(value):
            raise SCPIError(-222, f"{name}: {text!r} is not finite")
        return self.check(value, name)

    def check(self, value: float, name: str) -> float:
        """``value`` (a number already parsed, e.g. by the TSP interpreter) within range; -222
        otherwise."""
        if not math.isfinite(value):
            raise SCPIError(-222, f"{name}: {value!r} is not finite")
        if self.integer:
            value = float(round(value))
        # A relative tolerance on each bound lets "2.5US" through a 2.5E-6 maximum despite float
        # rounding, and no more: "-0" or "1E-400" stay below a 1E-6 minimum.
        if (value < self.minimum - 1e-12 * abs(self.minimum)
                or value > self.maximum + 1e-12 * abs(self.maximum)):
            raise SCPIError(
                -222, f"{name}={value:g} outside [{self.minimum:g}, {self.maximum:g}]"
            )
        return value

    def _suffix_scale(self, suffix: str, name: str) -> float:
        unit = self.unit.upper()
        if unit and suffix.endswith(unit):
            prefix = suffix[: -len(unit)]
        else:
            prefix = suffix
        if prefix == "":
            return 1.0
        if unit == "HZ" and prefix == "M":  # "MHZ" is megahertz by SCPI convention
            return 1e6
        if prefix in _SI_PREFIX:
            return _SI_PREFIX[prefix]
        raise SCPIError(-104, f"{name}: unknown suffix {suffix!r}")


def parse_bool(text: str, name: str) -> bool:
    word = text.strip().upper()
    if word in ("1", "ON"):
        return True
    if word in ("0", "OFF"):
        return False
    raise SCPIError(-224, f"{name}: expected ON|OFF|1|0, got {text!r}")


def parse_choice(text: str, choices: tuple[str, ...], name: str) -> str:
    """Match a character parameter given in the manual's mixed case (e.g. ``"IMMediate"``)."""
    word = text.strip().strip('"').upper()
    for choice in choices:
        short = "".join(c for c in choice if c.isupper() or c.isdigit())
        if word in (short, choice.upper()):
            return short
    raise SCPIError(-224, f"{name}: {text!r} not one of {', '.join(choices)}")


def fmt(value: float) -> str:
    """Numeric response in the instruments' NR3 style (``+1.000000E-03``), for settings."""
    return f"{value:+.6E}"


def fmt_reading(value: float) -> str:
    """A measured value in NR3 style with 17 significant digits (``+1.0000000000000000E-03``):
    enough for a float64 to survive the round trip, so readings through the instruments are
    bit-identical to the emulated array's own (the real instruments send fewer digits, which
    their resolution justifies; the emulator has no such limit to model)."""
    return f"{value:+.16E}"


# --- command table and executor -------------------------------------------------------------------

Handler = Callable[[list[int], list[str]], "str | None"]


@dataclass
class Command:
    """One entry of an instrument's command table.

    ``write`` handles the command form and ``query`` the ``?`` form; each receives the suffix
    of every pattern node and the argument strings.
    """

    pattern: str
    write: Handler | None = None
    query: Handler | None = None
    nodes: tuple[Node, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = compile_pattern(self.pattern)


#: What may not appear in a program message: anything but printable ASCII and tab.
_INVALID_CHARACTER = re.compile(r"[^\t\x20-\x7e]")


def check_characters(message: str) -> None:
    """Raise SCPIError(-101) if ``message`` holds a character outside printable 7-bit ASCII.

    IEEE 488.2 program messages are ASCII; the whole message is refused, as the parser of a real
    instrument stops at the first invalid character ("µ" in "1 µA" included: SCPI spells it "UA").
    """
    bad = _INVALID_CHARACTER.search(message)
    if bad is not None:
        raise SCPIError(-101, f"character 0x{ord(bad.group()):02X} at offset {bad.start()}; "
                              "message not executed")


class CommandSet:
    """Dispatches program messages to a command table and keeps the error queue."""

    def __init__(self, commands: list[Command], errors: ErrorQueue) -> None:
        self.commands = commands
        self.errors = errors

    def find(self, header: list[tuple[str, int | None]]) -> tuple[Command, list[int]] | None:
        for command in self.commands:
            suffixes = match_nodes(command.nodes, header)
            if suffixes is not None:
                return command, suffixes
        return None

    def execute(self, message: str, common: Callable[[str, list[str]], str | None]) -> str | None:
        """Run every ``;``-separated command in ``message``; return the joined query responses.

        A command that fails queues its error and the rest of the message still runs, as the
        Keysight and Keithley instruments do; a refused setting leaves the old, valid value in
        place, so running on is safe.
        """
        responses: list[str] = []
        path: list[tuple[str, int | None]] = []  # SCPI "current path" for relative headers
        for unit in split_outside_quotes(message, ";"):
            unit = unit.strip()
            if not unit:
                continue
            header, _, arg_text = unit.partition(" ")
            try:
                args = split_arguments(arg_text)
                if header.startswith("*"):
                    reply = common(header.upper(), args)
                else:
                    reply, path = self._one(header, args, path)
                if reply is not None:
                    responses.append(reply)
            except SCPIError as exc:
                self.errors.push(exc.code, exc.text)
        return ";".join(responses) if responses else None

    def _one(
        self, header: str, args: list[str], path: list[tuple[str, int | None]]
    ) -> tuple[str | None, list[tuple[str, int | None]]]:
        is_query = header.endswith("?")
        name = header[:-1] if is_query else header
        nodes = split_header(name)
        found = None
        if not name.startswith(":") and path:
            found = self.find(path + nodes)
            if found is not None:
                nodes = path + nodes
        if found is None:
            found = self.find(nodes)
        if found is None:
            raise SCPIError(-113, f"{header!r}")
        command, suffixes = found
        new_path = nodes[:-1]
        handler = command.query if is_query else command.write
        if handler is None:
            raise SCPIError(-113, f"{header!r} has no {'query' if is_query else 'command'} form")
        return handler(suffixes, args), new_path


def need_args(args: list[str], count: int, name: str) -> None:
    if len(args) < count:
        raise SCPIError(-109, f"{name} needs {count} parameter(s)")


def no_args(args: list[str], name: str) -> None:
    if args:
        raise SCPIError(-108, f"{name} takes no parameter")


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def channel_list(text: str, allowed: tuple[int, ...], name: str) -> list[int]:
    """Parse a SCPI channel list ``(@1)``, ``(@1,2)`` or ``(@1:2)``."""
    t = text.strip()
    if not (t.startswith("(@") and t.endswith(")")):
        raise SCPIError(-104, f"{name}: expected a channel list like (@1), got {text!r}")
    out: list[int] = []
    for part in t[2:-1].split(","):
        lo, _, hi = part.partition(":")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError as exc:
            raise SCPIError(-104, f"{name}: bad channel {part!r}") from exc
        for ch in range(first, last + 1):
            if ch not in allowed:
                raise SCPIError(-222, f"{name}: channel {ch} not in {allowed}")
            out.append(ch)
    return out

