"""Line numbers of keys in a TOML document, so validation errors can name the line.

tomllib gives no positions. This scanner walks the text once and records, for every table header and
every `key = value` line, the path it defines (array-of-tables entries get their index, as in the
parsed data: ("steps", 2, "params", "v_set")). Values spanning several lines (arrays, multi-line
strings) are skipped over; keys inside inline tables map to the line of their parent key.
"""
from __future__ import annotations

import re
from typing import Any

Path = tuple[Any, ...]
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _parse_key(text: str) -> tuple[list[str], str]:
    """Dotted key at the start of `text` -> (parts, rest of the text)."""
    parts: list[str] = []
    s = text.lstrip()
    while True:
        if s.startswith('"') or s.startswith("'"):
            q = s[0]
            end = s.find(q, 1)
            if end < 0:
                return parts, ""
            parts.append(s[1:end])
            s = s[end + 1:].lstrip()
        else:
            m = _BARE.match(s)
            if m is None:
                return parts, s
            parts.append(m.group(0))
            s = s[m.end():].lstrip()
        if s.startswith("."):
            s = s[1:].lstrip()
            continue
        return parts, s


def _depth_change(value: str) -> tuple[int, str | None]:
    """Net bracket depth of a value fragment, ignoring strings and comments; also returns the
    multi-line string delimiter left open at the end (or None)."""
    depth, i, n = 0, 0, len(value)
    while i < n:
        ch = value[i]
        if value.startswith('"""', i) or value.startswith("'''", i):
            delim = value[i:i + 3]
            end = value.find(delim, i + 3)
            if end < 0:
                return depth, delim
            i = end + 3
            continue
        if ch in "\"'":
            end = i + 1
            while end < n and value[end] != ch:
                end += 2 if (ch == '"' and value[end] == "\\") else 1
            i = end + 1
            continue
        if ch == "#":
            break
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        i += 1
    return depth, None


def key_lines(text: str) -> dict[Path, int]:
    """Map every table and key path in `text` to its 1-based line number."""
    lines: dict[Path, int] = {}
    aot_count: dict[Path, int] = {}  # resolved path of an array of tables -> entries so far
    current: Path = ()
    depth = 0
    open_string: str | None = None

    def resolve(parts: list[str]) -> Path:
        path: Path = ()
        for p in parts:
            path = path + (p,)
            if path in aot_count:
                path = path + (aot_count[path] - 1,)
        return path

    for lineno, raw in enumerate(text.splitlines(), start=1):
        if open_string is not None:  # inside a multi-line string value
            if open_string in raw:
                rest = raw.split(open_string, 1)[1]
                open_string = None
                d, open_string = _depth_change(rest)
                depth += d
            continue
        if depth > 0:  # continuation of a multi-line array or inline table
            d, open_string = _depth_change(raw)
            depth += d
            continue
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[["):
            parts, _ = _parse_key(s[2:])
            parent = resolve(parts[:-1])
            key = parent + (parts[-1],)
            aot_count[key] = aot_count.get(key, 0) + 1
            current = key + (aot_count[key] - 1,)
            lines.setdefault(key, lineno)
            lines[current] = lineno
            continue
        if s.startswith("["):
            parts, _ = _parse_key(s[1:])
            current = resolve(parts)
            lines.setdefault(current, lineno)
            continue
        parts, rest = _parse_key(s)
        if not parts or not rest.startswith("="):
            continue
        path = current + tuple(parts)
        for k in range(len(current) + 1, len(path) + 1):  # dotted keys define their parents too
            lines.setdefault(path[:k], lineno)
        d, open_string = _depth_change(rest[1:])
        depth += d
    return lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """Line of `path`, or of its longest prefix that appears in the file (e.g. the table a missing
    key belongs in); None if nothing matches."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return None
