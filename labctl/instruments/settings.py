"""Declarative instrument settings, in the manner of PyMeasure but async.

A driver lists each setting once::

    source_voltage = Setting(
        "Source level, V.",
        get=":SOUR:VOLT?", set=":SOUR:VOLT {value}",
        validator=in_range(-210.0, 210.0, "V"), guard="voltage",
    )

and uses it as ``await smu.source_voltage.set(1.2)`` / ``await smu.source_voltage.get()``.
``{ch}`` in a command is replaced by the channel number (or the channel's ``suffix``, e.g. "a" in
``smua``), so one class serves every channel.
Setting a value runs, in order and before any byte is sent: the validator (instrument range),
the owner's safety guard (station limits), formatting; then the command goes out and the
instrument's error queue is read (:meth:`Instrument.configure`). The last value set is cached
so that later guards (e.g. pulse energy) can check combinations.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .errors import InstrumentError, LimitError

V = TypeVar("V")
Validator = Callable[[str, Any], Any]


def in_range(low: float, high: float, unit: str = "") -> Validator:
    """Accept finite numbers in [low, high] (unit for the message only)."""

    def check(name: str, value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise LimitError(name, value, f"a number in [{low:g}, {high:g}] {unit}".rstrip()) from None
        if not (low <= v <= high):  # also refuses NaN
            raise LimitError(name, value, f"[{low:g}, {high:g}] {unit}".rstrip())
        return v

    check.low, check.high = low, high  # type: ignore[attr-defined]  # the range, for callers
    return check


def integer_in_range(low: int, high: int) -> Validator:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise LimitError(name, value, f"an integer in [{low}, {high}]")
        return value

    return check


def one_of(*choices: str) -> Validator:
    """Accept one of the given keywords (case-insensitive); returns the canonical spelling."""

    def check(name: str, value: Any) -> str:
        for choice in choices:
            if isinstance(value, str) and value.upper() == choice.upper():
                return choice
        raise LimitError(name, value, "one of " + ", ".join(choices))

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LimitError(name, value, "True or False")
    return value


def parse_bool(text: str) -> bool:
    return text.strip().upper() in ("1", "ON", "+1")


def parse_float(text: str) -> float:
    return float(text.strip().split(",")[0])


class Owner(Protocol):
    """What a setting needs from the object it is declared on (an instrument or channel)."""

    number: int
    cache: dict[str, Any]

    def guard(self, setting: str, kind: str, value: Any) -> None: ...

    async def configure(self, command: str) -> None: ...

    async def ask(self, command: str) -> str: ...


class Setting(Generic[V]):
    """One instrument setting: doc, SCPI get/set strings, validator, optional safety guard."""

    def __init__(
        self,
        doc: str,
        *,
        get: str | None = None,
        set: str | None = None,  # noqa: A002 - the manuals' word
        validator: Validator | None = None,
        guard: str | None = None,
        parse: Callable[[str], V] = parse_float,  # type: ignore[assignment]
        encode: Callable[[Any], str] | None = None,
        command_for: Callable[[Any, Any], str | None] | None = None,
    ) -> None:
        """``command_for(owner, value)``: the command for instruments whose commands set several
        values at once (KXCI's ``DV`` sets level and compliance together); None means "cache the
        value, nothing to send yet"."""
        self.__doc__ = doc
        self.get_command = get
        self.set_command = set
        self.validator = validator
        self.guard_kind = guard
        self.parse = parse
        self.encode = encode
        self.command_for = command_for
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return BoundSetting(self, obj)


class BoundSetting(Generic[V]):
    """A :class:`Setting` seen through one instrument or channel."""

    def __init__(self, setting: Setting[V], owner: Owner) -> None:
        self.setting = setting
        self.owner = owner

    @property
    def name(self) -> str:
        return self.setting.name

    def validate(self, value: Any) -> Any:
        """Range check and safety guard; raises LimitError. No I/O."""
        s = self.setting
        if s.set_command is None and s.command_for is None:
            raise AttributeError(f"{s.name} is read-only")
        checked = s.validator(s.name, value) if s.validator else value
        if s.guard_kind:
            self.owner.guard(s.name, s.guard_kind, checked)
        return checked

    def command(self, value: Any) -> str | None:
        """The exact command :meth:`set` would send (after validation); None: nothing to send."""
        s = self.setting
        if s.command_for is not None:
            return s.command_for(self.owner, value)
        assert s.set_command is not None
        text = s.encode(value) if s.encode else value
        if isinstance(text, float):
            text = num(text)  # full precision: the instrument gets exactly the value validated
        return s.set_command.format(value=text, ch=_suffix(self.owner))

    async def set(self, value: Any) -> None:
        checked = self.validate(value)
        command = self.command(checked)
        if command is not None:
            await self.owner.configure(command)
        self.owner.cache[self.name] = checked

    async def ensure(self, value: Any) -> None:
        """Set ``value`` unless this driver already set exactly that in this session (saves a
        round trip in loops; the cache is dropped on reconnect)."""
        if self.name in self.owner.cache and self.owner.cache[self.name] == value:
            return
        await self.set(value)

    async def get(self) -> V:
        s = self.setting
        if s.get_command is None:
            raise AttributeError(f"{s.name} cannot be read back")
        command = s.get_command.format(ch=_suffix(self.owner))
        reply = await self.owner.ask(command)
        try:
            return s.parse(reply)
        except ValueError as exc:
            raise InstrumentError(getattr(self.owner, "label", "?"), command,
                                  f"unexpected reply {reply!r}") from exc

    @property
    def cached(self) -> Any:
        """Last value set through this driver in this session, or None."""
        return self.owner.cache.get(self.name)


def _suffix(owner: Owner) -> str:
    """What ``{ch}`` stands for: the owner's ``suffix`` ("a" for a 2600B's smua), else its number."""
    return str(getattr(owner, "suffix", owner.number))


def on_off(value: bool) -> str:
    return "ON" if value else "OFF"


def num(value: float) -> str:
    """A number as sent to an instrument: the shortest text that reads back as the same float64
    (``0.2``, ``2.5e-06``, ``0.35000000000000003``), so the instrument applies exactly the value
    the host computed (NRf; every SCPI parser accepts it)."""
    return repr(float(value))


def number_list(values: Sequence[float]) -> str:
    return ",".join(num(v) for v in values)
