"""What every emulated instrument shares: IEEE 488.2 common commands, the SCPI error queue and the
SYSTem:ERRor subsystem. A model subclasses :class:`EmulatedInstrument`, lists its commands and keeps
its settings as plain attributes; it touches the array only through the :class:`~.bench.Bench`.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .scpi import Command, CommandSet, ErrorQueue, SCPIError, check_characters, no_args

log = logging.getLogger(__name__)


class EmulatedInstrument:
    """Base of the emulated models. Not thread-safe by itself: :meth:`handle` takes ``self.lock``."""

    #: *IDN? reply: manufacturer, model, serial number, firmware revision.
    idn: str = "EMULATED,INSTRUMENT,0,0"
    #: Keysight instruments report "+0,..." and Keithley ones "0,..." in SYST:ERR? replies.
    signed_error_codes: bool = False
    #: Short name used in logs and in `start_instruments` output.
    name: str = "instrument"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors = ErrorQueue()
        self.commands = CommandSet(self._system_commands() + self.command_table(), self.errors)
        self.reset()

    # -- to be provided by models -----------------------------------------------------------------
    def command_table(self) -> list[Command]:
        return []

    def reset(self) -> None:
        """*RST: default settings, outputs off."""

    def trigger(self) -> None:
        """*TRG: a bus trigger. Models without one report a settings conflict."""
        raise SCPIError(-221, "no bus trigger armed")

    def power_off(self) -> None:
        """The instrument lost power (server killed): outputs drop and the array sees nothing."""
        self.reset()

    # -- message entry point ----------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """Execute one program message; returns the response line without terminator, or None.

        A message with a character outside printable ASCII queues -101 and is not executed.
        """
        with self.lock:
            try:
                check_characters(message)
            except SCPIError as exc:
                self.errors.push(exc.code, exc.text)
                return None
            try:
                return self.execute(message)
            except Exception as exc:  # noqa: BLE001 - a model bug must not end the connection
                log.exception("%s: internal error executing %r", self.name, message[:200])
                self.errors.push(-200, SCPIError(-200, f"internal error: {exc!r}").text)
                return None

    def execute(self, message: str) -> str | None:
        """Run a checked program message; the caller holds ``self.lock``. Models with a second
        command language (the 707B's TSP) override this."""
        return self.commands.execute(message, self._common)

    # -- IEEE 488.2 common commands ---------------------------------------------------------------
    def _common(self, header: str, args: list[str]) -> str | None:
        handlers: dict[str, Callable[[], str | None]] = {
            "*IDN?": lambda: self.idn,
            "*RST": self._rst,
            "*CLS": self.errors.clear,
            "*OPC?": lambda: "1",  # every emulated operation completes before the reply
            "*OPC": lambda: None,
            "*WAI": lambda: None,
            "*TRG": self.trigger,
            "*ESR?": lambda: "0",
            "*STB?": lambda: "0",
            "*TST?": lambda: "0",
        }
        if header not in handlers:
            raise SCPIError(-113, repr(header))
        if header not in ("*TRG",):
            no_args(args, header)
        return handlers[header]()

    def _rst(self) -> None:
        self.reset()

    # -- SYSTem:ERRor ------------------------------------------------------------------------------
    def _format_error(self, code: int, text: str) -> str:
        number = f"{code:+d}" if self.signed_error_codes else str(code)
        return f'{number},"{text}"'

    def _system_commands(self) -> list[Command]:
        def next_error(_s: list[int], args: list[str]) -> str:
            no_args(args, "SYST:ERR?")
            return self._format_error(*self.errors.pop())

        def count(_s: list[int], args: list[str]) -> str:
            return str(len(self.errors))

        def clear(_s: list[int], args: list[str]) -> None:
            self.errors.clear()

        return [
            Command(":SYSTem:ERRor[:NEXT]", query=next_error),
            Command(":SYSTem:ERRor:COUNt", query=count),
            Command(":SYSTem:CLEar", write=clear),
        ]
