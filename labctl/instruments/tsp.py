"""What the TSP (Lua) instruments share: Keithley's ``errorqueue`` error model, quoting, and
script upload. TSP instruments take a Lua chunk per line; a setting is an assignment
(``smua.source.levelv = 0.2``), a query prints (``print(smua.source.levelv)``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .base import Instrument
from .errors import InstrumentError, LimitError

#: A script name TSP accepts (a Lua identifier).
SCRIPT_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")
#: Words a script line may not be: they would end or nest the upload.
_SCRIPT_KEYWORDS = ("loadscript", "endscript", "loadandrunscript")


class TspInstrument(Instrument):
    """An instrument programmed in TSP; errors come from ``errorqueue``."""

    error_query = "print(errorqueue.next())"
    error_query_in_message = False

    async def identify(self):  # type: ignore[no-untyped-def]
        """``*IDN?``, after an ``endscript``: a session that died during ``loadscript`` leaves the
        instrument storing every line as script, which would swallow this session's commands. The
        ``endscript`` ends such an upload (or queues an error that the ``*CLS`` after identify
        clears)."""
        await self.link.write("endscript")
        return await super().identify()

    async def read_errors(self, command: str = "errorqueue") -> list[tuple[int, str]]:
        """TSP error queue: ``errorqueue.count`` entries of ``errorqueue.next()`` (code, message,
        severity, node, tab-separated). One query when the queue is empty."""
        reply = await self.ask("print(errorqueue.count)")
        try:
            count = int(float(reply))
        except ValueError:
            raise InstrumentError(self.label, "print(errorqueue.count)", f"unexpected reply {reply!r}") from None
        errors = []
        for _ in range(min(count, 32)):
            reply = await self.ask(self.error_query)
            fields = reply.split("\t")
            try:
                errors.append((int(float(fields[0])), fields[1] if len(fields) > 1 else ""))
            except ValueError:
                raise InstrumentError(self.label, self.error_query, f"unexpected reply {reply!r}") from None
        return errors

    async def upload_script(self, name: str, lines: Sequence[str]) -> None:
        """``loadscript name`` / the lines / ``endscript``: store a script on the instrument (it
        compiles it then; a syntax error raises InstrumentError). Checked before anything is sent."""
        if not SCRIPT_NAME.match(name):
            raise LimitError("name", name, "a Lua identifier (letters, digits, _; not first a digit)")
        for k, line in enumerate(lines):
            if "\n" in line or "\r" in line or line.strip().split(" ")[0] in _SCRIPT_KEYWORDS:
                raise LimitError(f"lines[{k}]", line, "one line of Lua, not loadscript/endscript")
        await self.write(f"loadscript {name}")
        for line in lines:
            await self.write(line)
        await self.configure("endscript")

    async def run_script(self, name: str) -> None:
        """``name.run()``: run a stored script; raises InstrumentError if it queued errors."""
        if not SCRIPT_NAME.match(name):
            raise LimitError("name", name, "a Lua identifier")
        await self.configure(f"{name}.run()")


def tsp_string(field: str, value: str) -> str:
    """``value`` as a Lua string literal; LimitError if it holds a quote or a line break."""
    if any(c in value for c in "\"'\\\n\r"):
        raise LimitError(field, value, "text without quotes, backslashes or line breaks")
    return f'"{value}"'
