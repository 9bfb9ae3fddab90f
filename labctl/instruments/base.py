"""Base classes of the async instrument drivers.

An :class:`Instrument` owns one :class:`~.visa.VisaLink` (hence one lock), identifies itself with
``*IDN?``, sends configuration commands through :meth:`Instrument.configure` (which reads the error
queue afterwards and raises :class:`InstrumentError` naming instrument, command and error) and
switches its outputs off when leaving ``async with`` for any reason: normal exit, exception or
cancellation. A :class:`Channel` is one output; drivers declare their settings on channel classes
and an instrument creates one channel object per output from that template.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from labctl.core.limits import SafetyLimits

from .errors import InstrumentConnectionError, InstrumentError
from .visa import VisaLink

log = logging.getLogger(__name__)

#: How many entries to read from an error queue before deciding it will never say "no error".
MAX_ERRORS = 32


@dataclass(frozen=True)
class Identity:
    """The four fields of an ``*IDN?`` reply."""

    manufacturer: str
    model: str
    serial: str
    firmware: str

    @classmethod
    def parse(cls, reply: str) -> Identity:
        parts = [p.strip() for p in reply.split(",")]
        parts += [""] * (4 - len(parts))
        return cls(parts[0], parts[1], parts[2], ",".join(parts[3:]).strip(","))


def channel_limits(limits: SafetyLimits | dict[int, SafetyLimits] | None, number: int) -> SafetyLimits | None:
    """The limits of channel ``number``: one SafetyLimits for every channel, or per channel number."""
    return limits.get(number) if isinstance(limits, dict) else limits


class Channel:
    """One output of an instrument. Settings declared on subclasses use ``{ch}`` = ``number``."""

    def __init__(self, instrument: Instrument, number: int, limits: SafetyLimits | None) -> None:
        self.instrument = instrument
        self.number = number
        self.limits = limits
        self.cache: dict[str, Any] = {}  # last values set in this session (for guards)

    @property
    def label(self) -> str:
        return f"{self.instrument.label} channel {self.number}"

    async def configure(self, command: str) -> None:
        await self.instrument.configure(command)

    async def ask(self, command: str) -> str:
        return await self.instrument.ask(command)

    def guard(self, setting: str, kind: str, value: Any) -> None:
        """Safety check of a value about to be set; subclasses know the kinds they declare."""
        raise NotImplementedError(f"{type(self).__name__} has no guard {kind!r} (setting {setting})")

    async def off(self) -> None:
        """Switch this output off (safe state)."""


class Instrument:
    """Base of every driver. Use ``async with Driver(resource) as inst:``."""

    #: ``*IDN?`` replies this driver accepts (matched case-insensitively against the whole reply).
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r".*")
    #: Channel template and the channel numbers the model has.
    channel_class: ClassVar[type[Channel] | None] = None
    channel_numbers: ClassVar[tuple[int, ...]] = ()
    #: Query that pops one entry of the error queue.
    error_query: ClassVar[str] = ":SYST:ERR?"
    #: Whether the error query may follow a command in the same message (SCPI: yes; TSP: no, a
    #: runtime error ends the chunk before the query could answer).
    error_query_in_message: ClassVar[bool] = True
    kind: ClassVar[str] = "instrument"
    #: Query of the mains frequency the instrument integrates over (Hz), if it has one.
    line_frequency_query: ClassVar[str | None] = None
    #: Message terminator both ways (KXCI over LAN uses NUL).
    termination: ClassVar[str] = "\n"

    def __init__(
        self,
        resource: str,
        *,
        name: str | None = None,
        limits: SafetyLimits | dict[int, SafetyLimits] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """``limits``: one SafetyLimits for every channel, or per channel number."""
        self.name = name or self.kind
        self.resource = resource
        self.link = VisaLink(resource, self.name, timeout, self.termination)
        self.identity: Identity | None = None
        self.channels: dict[int, Channel] = {}
        if self.channel_class is not None:
            for n in self.channel_numbers:
                self.channels[n] = self.channel_class(self, n, channel_limits(limits, n))

    def __getitem__(self, number: int) -> Channel:
        try:
            return self.channels[number]
        except KeyError:
            raise ValueError(
                f"channel={number!r} refused: allowed {sorted(self.channels)} on {self.label}"
            ) from None

    @property
    def label(self) -> str:
        model = self.identity.model if self.identity else type(self).__name__
        return f"{self.name} ({model} at {self.resource})"

    # -- session ----------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, identify, and clear the status and error queue."""
        await self.link.open()
        await self.identify()
        await self.link.write("*CLS")

    async def identify(self) -> Identity:
        reply = await self.ask("*IDN?")
        self.identity = Identity.parse(reply)
        if not self.idn_pattern.match(reply):
            raise InstrumentError(self.label, "*IDN?", f"{reply!r} is not a model {type(self).__name__} drives")
        return self.identity

    async def close(self) -> None:
        await self.link.close()

    async def reconnect(self) -> None:
        """Reopen the link after a failure, then put every output in its safe state."""
        await self.link.open()
        for channel in self.channels.values():
            channel.cache.clear()  # the instrument may have been power-cycled: trust nothing
        await self.identify()
        await self.link.write("*CLS")
        await self.safe_off()

    async def safe_off(self) -> None:
        """Every output off. Called on exit, exceptions and cancellation."""
        for channel in self.channels.values():
            await channel.off()

    async def __aenter__(self) -> Instrument:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.safe_off()
        except InstrumentError as off_error:
            if exc is None:
                raise
            # The original failure matters more; a dead link cannot switch anything off anyway.
            log.error("%s: outputs could not be switched off after %r: %s", self.label, exc, off_error)
        finally:
            await self.close()

    # -- I/O --------------------------------------------------------------------------------------
    async def write(self, command: str) -> None:
        await self.link.write(command)

    async def ask(self, command: str, timeout: float | None = None) -> str:
        return await self.link.query(command, timeout)

    async def configure(self, command: str) -> None:
        """Send a configuration command and raise if the instrument queued an error for it.

        SCPI instruments get the command and the first error query in one program message
        (``<command>;:SYST:ERR?``): a failing command does not stop the rest of a SCPI message, so
        the reply is that command's error, in one round trip instead of two."""
        if self.error_query_in_message:
            code, message = self._parse_error(await self.link.query(f"{command};{self.error_query}"))
            errors = [] if code == 0 else [(code, message), *await self.read_errors(command)]
        else:
            await self.link.write(command)
            errors = await self.read_errors(command)
        if errors:
            raise InstrumentError(self.label, command, "; ".join(f"{c},{m}" for c, m in errors))

    async def read_errors(self, command: str = ":SYST:ERR?") -> list[tuple[int, str]]:
        """Drain the error queue; returns [(code, message), ...] (empty when all is well)."""
        errors: list[tuple[int, str]] = []
        for _ in range(MAX_ERRORS):
            code, message = self._parse_error(await self.ask(self.error_query))
            if code == 0:
                return errors
            errors.append((code, message))
        raise InstrumentError(self.label, command, f"error queue never emptied: {errors}")

    def _parse_error(self, reply: str) -> tuple[int, str]:
        number, _, message = reply.partition(",")
        try:
            return int(float(number)), message.strip().strip('"')
        except ValueError:
            raise InstrumentError(self.label, self.error_query, f"unexpected reply {reply!r}") from None

    async def check_connection(self) -> None:
        """Raise InstrumentConnectionError unless the link is up."""
        if not self.link.is_open:
            raise InstrumentConnectionError(self.label, "(none)", "not connected; call reconnect()")
