"""Keithley Series 2600B System SourceMeters (2601B..2636B; Reference Manual 2600BS-901-01), TSP.

Each setting is the Lua attribute the manual documents, set by assignment and read with
``print()``; channel 1 is ``smua``, channel 2 ``smub``. Sweeps and the pulse-measure train use the
factory-script functions (KIGeneral, KIPulse): ``SweepVLinMeasureI``, ``SweepVListMeasureI`` and
``PulseVMeasureI``, which leave their readings in ``smuX.nvbuffer1``; ``printbuffer`` fetches them.
Errors come from ``errorqueue`` (:mod:`.tsp`).
"""
from __future__ import annotations

import re
import numpy as np

from .errors import InstrumentError, LimitError
from .settings import Setting, boolean, in_range, num, number_list, one_of
from .smu import SourceMeterChannel, SweepResult, is_staircase
from .tsp import TspInstrument

_FUNCTIONS = {"VOLT": "OUTPUT_DCVOLTS", "CURR": "OUTPUT_DCAMPS"}


def _parse_on(reply: str) -> bool:
    return float(reply) != 0.0


class Keithley2600BChannel(SourceMeterChannel):
    """One SMU channel, ``smua`` or ``smub``."""

    @property
    def suffix(self) -> str:
        return "ab"[self.number - 1]

    source_function = Setting(
        "Source function: VOLT (smuX.OUTPUT_DCVOLTS) or CURR (smuX.OUTPUT_DCAMPS).",
        get="print(smu{ch}.source.func)", set="smu{ch}.source.func = smu{ch}.{value}",
        validator=one_of("VOLT", "CURR"), encode=_FUNCTIONS.__getitem__,
        parse=lambda s: "VOLT" if float(s) == 1.0 else "CURR",
    )
    source_voltage = Setting(
        "Voltage source level, V (+-202 V on the 261xB/263xB, +-40.4 V on the 260xB).",
        get="print(smu{ch}.source.levelv)", set="smu{ch}.source.levelv = {value}",
        validator=in_range(-202.0, 202.0, "V"), guard="voltage",
    )
    current_limit = Setting(
        "Current limit (compliance) of the voltage source, A (smuX.source.limiti; 10 nA .. 3.03 A).",
        get="print(smu{ch}.source.limiti)", set="smu{ch}.source.limiti = {value}",
        validator=in_range(10e-9, 3.03, "A"), guard="compliance",
    )
    voltage_limit = Setting(
        "Voltage limit (compliance) of the current source, V (smuX.source.limitv).",
        get="print(smu{ch}.source.limitv)", set="smu{ch}.source.limitv = {value}",
        validator=in_range(0.02, 202.0, "V"), guard="voltage",
    )
    source_delay = Setting(
        "Delay after a source change before measuring, s (smuX.source.delay).",
        get="print(smu{ch}.source.delay)", set="smu{ch}.source.delay = {value}",
        validator=in_range(0.0, 1e4, "s"),
    )
    nplc = Setting(
        "Measurement integration time, power-line cycles (0.001 .. 25).",
        get="print(smu{ch}.measure.nplc)", set="smu{ch}.measure.nplc = {value}",
        validator=in_range(0.001, 25.0),
    )
    output = Setting(
        "Output on/off (smuX.OUTPUT_ON / smuX.OUTPUT_OFF).",
        get="print(smu{ch}.source.output)", set="smu{ch}.source.output = smu{ch}.{value}",
        validator=boolean, guard="output", parse=_parse_on,
        encode=lambda v: "OUTPUT_ON" if v else "OUTPUT_OFF",
    )

    @property
    def smu(self) -> str:
        return f"smu{self.suffix}"

    async def measure_current(self) -> float:
        """``print(smuX.measure.i())``: one current reading, A (output must be on)."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        await self.source_function.ensure("VOLT")
        return float(await self.ask(f"print({self.smu}.measure.i())"))

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        n = len(points)
        if is_staircase(points):
            call = f"SweepVLinMeasureI({self.smu}, {num(points[0])}, {num(points[-1])}, {num(delay)}, {n})"
        else:
            call = f"SweepVListMeasureI({self.smu}, {{{number_list(points)}}}, {num(delay)}, {n})"
        await self.source_function.ensure("VOLT")
        nplc = self.cache.get("nplc") or 1.0
        result = await self._factory(call, n * (delay + nplc / 50.0))
        self.cache["output"] = False  # the factory sweeps end with the output off
        return result

    async def pulse_measure(self, bias: float, level: float, on_time: float, off_time: float,
                            points: int) -> SweepResult:
        """``PulseVMeasureI(smu, bias, level, ton, toff, points)`` (KIPulse): ``points`` cycles of
        ``bias`` V for ``off_time`` s, then ``level`` V for ``on_time`` s with the current measured
        in it. Returns the level (V) and current (A) of each pulse. Every value is checked against
        the limits, and a current limit must have been set, before anything is sent; the output is
        off afterwards (and after any failure)."""
        self.guard("bias", "voltage", bias)
        self.guard("level", "voltage", level)
        if self.limits is not None:
            self.limits.check_width("on_time", on_time)
        if not 0 <= off_time <= 1e4:
            raise LimitError("off_time", off_time, "[0, 10000] s")
        if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= 60_000:
            raise LimitError("points", points, "an integer in [1, 60000]")
        self.require_compliance("pulse_measure")
        call = (f"PulseVMeasureI({self.smu}, {num(bias)}, {num(level)}, {num(on_time)}, "
                f"{num(off_time)}, {points})")
        try:
            await self.source_function.ensure("VOLT")
            result = await self._factory(call, points * (on_time + off_time))
        except BaseException:
            await self._off_after_failure()
            raise
        await self.off()
        return result

    async def _factory(self, call: str, expected: float) -> SweepResult:
        """Run a factory function; wait for it (``*OPC?``); fetch smuX.nvbuffer1."""
        inst = self.instrument
        await inst.write(call)
        await inst.ask("*OPC?", timeout=inst.link.timeout + 2 * expected)
        errors = await inst.read_errors(call)
        if errors:
            raise InstrumentError(self.label, call, "; ".join(f"{c},{m}" for c, m in errors))
        return await self.buffer_readings(1)

    async def buffer_readings(self, buffer: int = 1) -> SweepResult:
        """Source values (V) and readings (A) in ``smuX.nvbuffer<buffer>`` (1 or 2)."""
        if buffer not in (1, 2):
            raise LimitError("buffer", buffer, "1 or 2 (nvbuffer1, nvbuffer2)")
        name = f"{self.smu}.nvbuffer{buffer}"
        count = int(float(await self.ask(f"print({name}.n)")))
        if count == 0:
            return SweepResult(voltages=np.zeros(0), currents=np.zeros(0))
        data = await self.ask(f"printbuffer(1, {count}, {name}.sourcevalues, {name}.readings)")
        values = np.array([float(x) for x in data.split(",")], dtype=float)
        return SweepResult(voltages=values[0::2], currents=values[1::2])

    async def clear_buffer(self, buffer: int = 1) -> None:
        """``smuX.nvbuffer<buffer>.clear()``."""
        if buffer not in (1, 2):
            raise LimitError("buffer", buffer, "1 or 2 (nvbuffer1, nvbuffer2)")
        await self.configure(f"{self.smu}.nvbuffer{buffer}.clear()")

    async def measure_into_buffer(self, buffer: int = 1) -> None:
        """``smuX.measure.i(smuX.nvbuffer<buffer>)``: one reading appended to the buffer."""
        if buffer not in (1, 2):
            raise LimitError("buffer", buffer, "1 or 2 (nvbuffer1, nvbuffer2)")
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        await self.configure(f"{self.smu}.measure.i({self.smu}.nvbuffer{buffer})")


class Keithley2600B(TspInstrument):
    """Keithley 2600B SourceMeter; ``smu[1]`` is smua, ``smu[2]`` smub (two-channel models)."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*MODEL 26\d\d[AB]?,")
    channel_class = Keithley2600BChannel
    channel_numbers = (1, 2)
    kind = "smu"
    line_frequency_query = "print(localnode.linefreq)"

    async def identify(self):  # type: ignore[no-untyped-def]
        identity = await super().identify()
        # 2601B, 2611B, 2635B (odd last digit): one channel, smua.
        if re.match(r"(?i)MODEL 26\d[135]", identity.model):
            self.channels.pop(2, None)
        return identity
