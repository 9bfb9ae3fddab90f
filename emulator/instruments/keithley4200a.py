"""Emulated Keithley 4200A-SCS parameter analyzer over KXCI (Keithley External Control Interface,
4200A-KXCI-907-01): two SMUs and one 4225-PMU with two 4225-RPMs on the analyzer bench. Channel 1's
RPM output is matrix row C; channel 2's RPM also carries SMU2 (row B): ``:PMU:RPM:CONFIGURE PMU1-2,
0`` gives the row to the pulse channel, ``..., 3`` (the power-on state here) back to SMU2.

KXCI over LAN answers every command: ``ACK`` for settings, the data for queries. Messages end in
LF or NUL (Keithley's own LAN examples use NUL both ways; a connection that sends NUL gets NUL
back). Errors follow KXCI: the instrument keeps its errors and ``:ERROR:LAST:GET`` reports the
newest as ``<message> (<code>)`` (``No error. (0)`` when none); ``:ERROR:LAST:CLEAR`` forgets them.

Commands (docs/instruments.md, "Keithley 4200A-SCS"):

    user mode   US, DV<ch>,<range>,<V>,<Icomp>   DV<ch> (0 V, off)   CL   TI<ch>   TV<ch>
                IT1|IT2|IT3  IT4,<delay factor>,<filter factor>,<NPLC>   RI/RG/RS/BC/EM/DR (accepted)
    page mode   DE  CH<ch>,'<V name>','<I name>',<mode>,<function>  SS  VL<ch>,<range>,<Icomp>,<V>...
                VR1,<start>,<stop>,<step>,<Icomp>  VC<ch>,<V>,<Icomp>  DT <delay>  SM  DM1|DM2  LI ...
                MD  ME1   DO '<name>'
    4225-PMU    :PMU:INIT  :PMU:RPM:CONFIGURE  :PMU:SOURCE:RANGE  :PMU:MEASURE:RANGE  :PMU:LOAD
                :PMU:SAMPLE:RATE  :PMU:SARB:SEQ:TIME|STARTV|STOPV|MEAS:TYPE|MEAS:START|MEAS:STOP
                :PMU:SARB:WFM:SEQ:LIST  :PMU:OUTPUT:STATE  :PMU:EXECUTE  :PMU:ABORT
                :PMU:TEST:STATUS?  :PMU:DATA:COUNT?  :PMU:DATA:GET
    common      *IDN?  *RST  :ERROR:LAST:GET  :ERROR:LAST:CLEAR

Error codes are the emulator's where the reference gives none (listed in docs/instruments.md);
-820 (segment start does not match the previous stop) is the 4200A's own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import waveform
from .analyzer import (AnalyzerError, TranslatingErrorQueue, glued_channel, integer, level, need, number, reading,
                       spot_mean, split_command)
from .base import EmulatedInstrument
from .bench import Bench
from .scpi import SCPIError
from .source_meter import LINE_FREQUENCY

# Error numbers (emulator's choice unless noted).
E_UNDEFINED = -100
E_PARAMETER = -110
E_STATE = -111
E_EXECUTE = -112
E_SEGMENT = -820  # 4200A: "PMU segment start value ... does not match previous segment stop value"
E_SAMPLES = -835  # 4200A: too many samples for the sample rate and sequence time
E_CHARACTER, E_TOO_LONG, E_OVERFLOW = -113, -114, -115
#: The shared transport's SCPI codes in this instrument's numbers.
TRANSPORT_CODES = {-101: E_CHARACTER, -223: E_TOO_LONG, -350: E_OVERFLOW, -200: E_EXECUTE}

SMU_CHANNELS = (1, 2)
SMU_VOLTAGE = 210.0  # V, 4200-SMU 200 V range with overrange
SMU_CURRENT = 0.105  # A, 4200-SMU 100 mA range with overrange
NPLC_BY_MODE = {1: 0.01, 2: 1.0, 3: 10.0}  # IT1 short, IT2 normal, IT3 long (PLC)
PMU_CHANNELS = (1, 2)
#: :PMU:RPM:CONFIGURE pathways (the LPT library's KI_RPM_PULSE .. KI_RPM_SMU numbering).
RPM_PULSE, RPM_CV_2W, RPM_CV_4W, RPM_SMU = 0, 1, 2, 3
#: SMU -> PMU channel whose RPM carries it to the matrix (SMU1 has its own row).
SMU_THROUGH_RPM = {2: 2}
#: :PMU:MEASURE:RANGE current ranges (A) and their code in a data point's status word.
CURRENT_RANGES = {100e-9: 0, 1e-6: 1, 10e-6: 2, 100e-6: 3, 1e-3: 4, 10e-3: 5, 200e-3: 6, 800e-3: 7}
SEGMENT_MIN, SEGMENT_MAX, SEGMENT_STEP = 20e-9, 40.0, 10e-9  # s
MAX_SEGMENTS = 2048
MAX_SEQUENCES = 512
MAX_POINTS = 65536  # samples kept per channel and test
MAX_GET = 2048  # points per :PMU:DATA:GET
SAMPLE_RATE = (1e3, 200e6)  # S/s


@dataclass
class SMU:
    terminal: str
    level: float = 0.0  # V
    compliance: float = 1e-4  # A
    on: bool = False


@dataclass
class Sequence:
    time: list[float] = field(default_factory=list)
    startv: list[float] = field(default_factory=list)
    stopv: list[float] = field(default_factory=list)
    meas_type: list[int] = field(default_factory=list)
    meas_start: list[float] = field(default_factory=list)
    meas_stop: list[float] = field(default_factory=list)


@dataclass
class PMUChannel:
    terminal: str
    number: int = 1
    source_range: float = 10.0  # V
    current_range: float = 10e-3  # A
    rpm: int = RPM_SMU
    output: bool = False
    sequences: dict[int, Sequence] = field(default_factory=dict)
    sequence_list: list[tuple[int, int]] = field(default_factory=list)
    data: list[tuple[float, float, float, int]] = field(default_factory=list)  # V, I, t, status


class Keithley4200A(EmulatedInstrument):
    idn = "KEITHLEY INSTRUMENTS,KI4200A,04200001,V1.13"
    name = "analyzer_4200a"
    #: Replies to a connection that sent NUL-terminated messages end in NUL too (server.py).
    nul_terminated = True

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        limits = bench.limits()
        self.max_abs_voltage = float(getattr(limits, "v_max", 10.0))
        super().__init__()
        self.errors = TranslatingErrorQueue(TRANSPORT_CODES)
        self.commands.errors = self.errors

    def reset(self) -> None:
        self.smus = {ch: SMU(f"k4200.smu{ch}") for ch in SMU_CHANNELS}
        self.nplc = 1.0
        self.pmu = {ch: PMUChannel(f"k4200.pmu{ch}", ch) for ch in PMU_CHANNELS}
        self.sample_rate = 200e6
        self._page_reset()
        for smu in self.smus.values():
            self.bench.set_dc(smu.terminal, False, 0.0)

    def _page_reset(self) -> None:
        self.names: dict[int, tuple[str, str, int, int]] = {}  # ch -> (V name, I name, mode, function)
        self.var1: tuple[int, list[float], float] | None = None  # (channel, points, compliance)
        self.constants: dict[int, tuple[float, float]] = {}
        self.delay = 0.0
        self.results: dict[str, list[tuple[str, float]]] = {}

    def power_off(self) -> None:
        self.reset()

    # -- message entry point ----------------------------------------------------------------------
    def execute(self, message: str) -> str | None:
        """Every message gets one reply: the data of a query, else ``ACK`` (also after an error,
        which goes to the error list)."""
        text = message.strip()
        query = "?" in text.split(" ", 1)[0] or text.upper().startswith(("DO ", "TI", "TV"))
        try:
            reply = self._dispatch(text)
        except AnalyzerError as exc:
            self.errors.push(exc.code, exc.text)
            return "" if query else "ACK"
        except SCPIError as exc:  # the bench refused (the array's own limits): an execution error
            self.errors.push(E_EXECUTE, exc.detail or exc.text)
            return "" if query else "ACK"
        return "ACK" if reply is None else reply

    def _dispatch(self, text: str) -> str | None:
        if text.startswith((":", "*")):
            header, args = split_command(text)
            if header == "*IDN?":
                return self.idn
            if header == "*RST":
                self.reset()
                return None
            if header in (":ERROR:LAST:GET", ":ERR:LAST:GET"):
                code, message = self.errors.newest()
                return "No error. (0)" if code == 0 else f"{message} ({code})"
            if header in (":ERROR:LAST:CLEAR", ":ERR:LAST:CLEAR"):
                self.errors.clear()
                return None
            if header.startswith(":PMU:"):
                return self._pmu(header, args)
            raise AnalyzerError(E_UNDEFINED, f"undefined command {header[:40]!r}")
        if text.upper().startswith("DO"):
            return self._data_out(text[2:].strip())
        header, args = glued_channel(text)
        handler = self._user_commands().get(header)
        if handler is None:
            raise AnalyzerError(E_UNDEFINED, f"undefined command {header[:40]!r}")
        return handler(args)

    # -- user mode --------------------------------------------------------------------------------
    def _user_commands(self) -> dict[str, object]:
        accepted = ("US", "BC", "EM", "DR", "RS", "RI", "RG", "SM", "MD", "LI", "DM", "SS")
        table: dict[str, object] = {name: (lambda _a: None) for name in accepted}
        table.update({
            "DV": self._dv, "DI": self._di, "CL": self._clear, "TI": self._ti, "TV": self._tv, "IT": self._it,
            "DE": lambda _a: self._page_reset(), "CH": self._ch, "VL": self._vl, "VR": self._vr,
            "VC": self._vc, "DT": self._dt, "ME": self._me,
        })
        return table  # type: ignore[return-value]

    def _smu(self, text: str) -> SMU:
        ch = integer(text, "channel", 1, 8, E_PARAMETER)
        if ch not in self.smus:
            raise AnalyzerError(E_PARAMETER, f"SMU{ch} is not installed (SMU1, SMU2)")
        return self.smus[ch]

    def _voltage(self, text: str, name: str, limit: float) -> float:
        return level(text, name, limit, self.max_abs_voltage, E_PARAMETER)

    def _dv(self, args: list[str]) -> None:
        need(args, 1, "DV", E_PARAMETER)
        smu = self._smu(args[0])
        if len(args) == 1:  # DV<ch> with no level: the source goes to 0 V and off
            smu.level, smu.on = 0.0, False
        else:
            need(args, 4, "DV", E_PARAMETER)
            integer(args[1], "range", 0, 3, E_PARAMETER)
            level = self._voltage(args[2], "DV voltage", SMU_VOLTAGE)
            compliance = number(args[3], "DV compliance", 1e-12, SMU_CURRENT, E_PARAMETER)
            smu.level, smu.compliance, smu.on = level, compliance, True
        self._drive(smu)

    def _drive(self, smu: SMU, on: bool | None = None, level: float | None = None) -> None:
        """The bench sees the SMU's output (``on``/``level`` override its user-mode state) unless
        the RPM that carries it has given the row to its pulse channel."""
        on = smu.on if on is None else on
        rpm = SMU_THROUGH_RPM.get(int(smu.terminal[-1]))
        if rpm is not None and self.pmu[rpm].rpm != RPM_SMU:
            on = False
        self.bench.set_dc(smu.terminal, on, smu.level if level is None else level)

    def _di(self, args: list[str]) -> None:
        raise AnalyzerError(E_STATE, "DI: current sourcing is not emulated (the array is driven by voltage)")

    def _clear(self, args: list[str]) -> None:
        for smu in self.smus.values():
            smu.level, smu.on = 0.0, False
            self._drive(smu)

    def _ti(self, args: list[str]) -> str:
        need(args, 1, "TI", E_PARAMETER)
        smu = self._smu(args[0])
        if not smu.on:
            raise AnalyzerError(E_STATE, f"TI{args[0]}: SMU is not sourcing (send DV first)")
        current = self.bench.measure(smu.terminal, smu.level, self.nplc / LINE_FREQUENCY)
        status = "N"
        if abs(current) > smu.compliance:
            status, current = "C", math.copysign(smu.compliance, current)
        return f"{status}{'ABCDEFGH'[int(args[0]) - 1]}I{reading(current)}"

    def _tv(self, args: list[str]) -> str:
        need(args, 1, "TV", E_PARAMETER)
        smu = self._smu(args[0])
        return f"N{'ABCDEFGH'[int(args[0]) - 1]}V{reading(smu.level if smu.on else 0.0)}"

    def _it(self, args: list[str]) -> None:
        need(args, 1, "IT", E_PARAMETER)
        mode = integer(args[0], "IT mode", 1, 4, E_PARAMETER)
        if mode < 4:
            self.nplc = NPLC_BY_MODE[mode]
            return
        need(args, 4, "IT4", E_PARAMETER)
        number(args[1], "delay factor", 0.0, 100.0, E_PARAMETER)
        number(args[2], "filter factor", 0.0, 100.0, E_PARAMETER)
        self.nplc = number(args[3], "A/D integration time (PLC)", 0.01, 10.0, E_PARAMETER)

    # -- page mode (sweeps) -----------------------------------------------------------------------
    def _ch(self, args: list[str]) -> None:
        need(args, 1, "CH", E_PARAMETER)
        self._smu(args[0])  # validates the channel
        number_ = int(args[0])
        if len(args) == 1:
            self.names.pop(number_, None)
            return
        need(args, 5, "CH", E_PARAMETER)
        vname, iname = (a.strip().strip("'\"") for a in args[1:3])
        if not (vname.isidentifier() and iname.isidentifier()) or len(vname) > 6 or len(iname) > 6:
            raise AnalyzerError(E_PARAMETER, "CH: names are 1-6 letters or digits, starting with a letter")
        mode = integer(args[3], "source mode", 1, 3, E_PARAMETER)
        function = integer(args[4], "source function", 1, 4, E_PARAMETER)
        if mode != 1:
            raise AnalyzerError(E_STATE, "CH: only voltage source mode (1) is emulated")
        self.names[number_] = (vname, iname, mode, function)

    def _vl(self, args: list[str]) -> None:
        need(args, 4, "VL", E_PARAMETER)
        ch = int(self._smu(args[0]).terminal[-1])
        integer(args[1], "range", 0, 3, E_PARAMETER)
        compliance = number(args[2], "compliance", 1e-12, SMU_CURRENT, E_PARAMETER)
        if len(args) - 3 > 4096:
            raise AnalyzerError(E_PARAMETER, "VL: at most 4096 points")
        points = [self._voltage(a, "VL voltage", SMU_VOLTAGE) for a in args[3:]]
        self.var1 = (ch, points, compliance)

    def _vr(self, args: list[str]) -> None:
        need(args, 5, "VR", E_PARAMETER)
        integer(args[0], "VR mode", 1, 1, E_PARAMETER)  # 1: linear
        start = self._voltage(args[1], "start", SMU_VOLTAGE)
        stop = self._voltage(args[2], "stop", SMU_VOLTAGE)
        step = number(args[3], "step", -2 * SMU_VOLTAGE, 2 * SMU_VOLTAGE, E_PARAMETER)
        compliance = number(args[4], "compliance", 1e-12, SMU_CURRENT, E_PARAMETER)
        if step == 0 or (stop - start) * step < 0:
            raise AnalyzerError(E_PARAMETER, f"VR: step {step:g} V does not lead from {start:g} to {stop:g} V")
        n = int(abs(stop - start) / abs(step) + 1e-9) + 1
        if n > 4096:
            raise AnalyzerError(E_PARAMETER, "VR: at most 4096 points")
        var1 = [ch for ch, d in self.names.items() if d[3] == 1]
        if not var1:
            raise AnalyzerError(E_STATE, "VR: no channel is defined as VAR1 (CH ...,1)")
        self.var1 = (var1[0], [start + k * step for k in range(n)], compliance)

    def _vc(self, args: list[str]) -> None:
        need(args, 3, "VC", E_PARAMETER)
        smu = self._smu(args[0])
        level = self._voltage(args[1], "VC voltage", SMU_VOLTAGE)
        compliance = number(args[2], "compliance", 1e-12, SMU_CURRENT, E_PARAMETER)
        self.constants[int(smu.terminal[-1])] = (level, compliance)

    def _dt(self, args: list[str]) -> None:
        need(args, 1, "DT", E_PARAMETER)
        self.delay = number(args[0], "delay time", 0.0, 65.0, E_PARAMETER)

    def _me(self, args: list[str]) -> None:
        need(args, 1, "ME", E_PARAMETER)
        if integer(args[0], "ME mode", 1, 4, E_PARAMETER) == 4:
            return  # abort: nothing runs asynchronously here
        if self.var1 is None:
            raise AnalyzerError(E_STATE, "ME1: no sweep defined (VL or VR)")
        ch, points, compliance = self.var1
        if ch not in self.names:
            raise AnalyzerError(E_STATE, f"ME1: SMU{ch} has no channel definition (CH)")
        for c, (constant, _comp) in self.constants.items():
            self._drive(self.smus[c], True, constant)
        smu = self.smus[ch]
        dwell = self.delay + self.nplc / LINE_FREQUENCY
        applied, currents = self.bench.sweep(smu.terminal, points, dwell, compliance)
        vname, iname = self.names[ch][:2]
        self.results = {
            vname: [("N", v) for v in applied],
            iname: [("C" if abs(i) >= compliance else "N", i) for i in currents],
        }
        # After the test every swept source returns to its user-mode state (off unless DV set it).
        self._drive(smu)

    def _data_out(self, rest: str) -> str:
        name = rest.strip().strip("'\"")
        if name not in self.results:
            raise AnalyzerError(E_PARAMETER, f"DO: no data named {name[:20]!r}")
        return ",".join(f"{status}{reading(v)}" for status, v in self.results[name])

    # -- 4225-PMU ---------------------------------------------------------------------------------
    def _pmu_channel(self, text: str) -> PMUChannel:
        ch = integer(text, "channel", 1, 8, E_PARAMETER)
        if ch not in self.pmu:
            raise AnalyzerError(E_PARAMETER, f"PMU channel {ch} is not installed (channels 1, 2)")
        return self.pmu[ch]

    def _pmu(self, header: str, args: list[str]) -> str | None:
        sub = header[len(":PMU:"):]
        if sub == "INIT":
            need(args, 1, header, E_PARAMETER)
            integer(args[0], "mode", 0, 1, E_PARAMETER)
            for ch in self.pmu.values():
                ch.sequences.clear()
                ch.sequence_list.clear()
                ch.data.clear()
                ch.output = False
            return None
        if sub == "RPM:CONFIGURE":
            return self._rpm(args)
        if sub == "MEASURE:RANGE":
            need(args, 2, header, E_PARAMETER)
            ch = self._pmu_channel(args[0])
            if integer(args[1], "range type", 0, 2, E_PARAMETER) == 2:  # fixed
                need(args, 3, header, E_PARAMETER)
                value = number(args[2], "current range", 1e-7, 0.8, E_PARAMETER)
                ch.current_range = min(CURRENT_RANGES, key=lambda r: abs(math.log(r / value)))
            return None
        if sub == "LOAD":
            need(args, 2, header, E_PARAMETER)
            return None
        if sub == "SOURCE:RANGE":
            need(args, 2, header, E_PARAMETER)
            ch = self._pmu_channel(args[0])
            value = number(args[1], "source range", 10.0, 40.0, E_PARAMETER)
            if value not in (10.0, 40.0):
                raise AnalyzerError(E_PARAMETER, "source range: 10 or 40 V")
            ch.source_range = value
            return None
        if sub == "SAMPLE:RATE":
            need(args, 1, header, E_PARAMETER)
            self.sample_rate = number(args[0], "sample rate", *SAMPLE_RATE, E_PARAMETER)
            return None
        if sub.startswith("SARB:SEQ:"):
            return self._sequence_array(header, sub[len("SARB:SEQ:"):], args)
        if sub == "SARB:WFM:SEQ:LIST":
            need(args, 3, header, E_PARAMETER)
            ch = self._pmu_channel(args[0])
            if (len(args) - 1) % 2:
                raise AnalyzerError(E_PARAMETER, "sequence list: pairs of <sequence>, <loop count>")
            pairs = [(integer(args[k], "sequence", 1, MAX_SEQUENCES, E_PARAMETER),
                      integer(args[k + 1], "loop count", 1, 10**12, E_PARAMETER)) for k in range(1, len(args), 2)]
            ch.sequence_list = pairs
            return None
        if sub == "OUTPUT:STATE":
            need(args, 2, header, E_PARAMETER)
            ch = self._pmu_channel(args[0])
            ch.output = bool(integer(args[1], "state", 0, 1, E_PARAMETER))
            return None
        if sub == "EXECUTE":
            self._execute()
            return None
        if sub == "ABORT":
            for ch in self.pmu.values():
                ch.output = False
            return None
        if sub == "TEST:STATUS?":
            return "0"
        if sub == "DATA:COUNT?":
            need(args, 1, header, E_PARAMETER)
            return str(len(self._pmu_channel(args[0]).data))
        if sub == "DATA:GET":
            return self._data_get(args)
        raise AnalyzerError(E_UNDEFINED, f"undefined command {header[:40]!r}")

    def _sequence_array(self, header: str, what: str, args: list[str]) -> None:
        need(args, 3, header, E_PARAMETER)
        ch = self._pmu_channel(args[0])
        seq_id = integer(args[1], "sequence", 1, MAX_SEQUENCES, E_PARAMETER)
        values = args[2:]
        if len(values) > MAX_SEGMENTS:
            raise AnalyzerError(E_PARAMETER, f"{header}: at most {MAX_SEGMENTS} segments")
        seq = ch.sequences.setdefault(seq_id, Sequence())
        if what == "TIME":
            times = [number(x, "segment time", SEGMENT_MIN, SEGMENT_MAX, E_PARAMETER) for x in values]
            for t in times:
                if abs(t / SEGMENT_STEP - round(t / SEGMENT_STEP)) > 1e-6:
                    raise AnalyzerError(E_PARAMETER, f"segment time {t:g} s is not a multiple of 10 ns")
            seq.time = times
        elif what in ("STARTV", "STOPV"):
            levels = [self._voltage(x, what, ch.source_range) for x in values]
            setattr(seq, what.lower(), levels)
        elif what == "MEAS:TYPE":
            seq.meas_type = [integer(x, "measure type", 0, 4, E_PARAMETER) for x in values]
        elif what in ("MEAS:START", "MEAS:STOP"):
            setattr(seq, "meas_" + what[5:].lower(), [number(x, what, 0.0, SEGMENT_MAX, E_PARAMETER) for x in values])
        elif what in ("SSR", "TRIG"):
            [integer(x, what, 0, 1, E_PARAMETER) for x in values]
        else:
            raise AnalyzerError(E_UNDEFINED, f"undefined command {header[:40]!r}")

    def _rpm(self, args: list[str]) -> None:
        """``:PMU:RPM:CONFIGURE PMU<card>-<ch>, <pathway>``: 0 pulse, 3 SMU (CV refused: no CVU)."""
        need(args, 2, ":PMU:RPM:CONFIGURE", E_PARAMETER)
        name = args[0].strip().upper()
        if not (len(name) == 6 and name.startswith("PMU1-") and name[5].isdigit()):
            raise AnalyzerError(E_PARAMETER, f"RPM {args[0][:20]!r}: PMU1-1 or PMU1-2")
        ch = self._pmu_channel(name[5])
        mode = integer(args[1], "RPM pathway", 0, 3, E_PARAMETER)
        if mode in (RPM_CV_2W, RPM_CV_4W):
            raise AnalyzerError(E_STATE, "RPM CV pathways are not emulated (no CVU)")
        ch.rpm = mode
        for smu_number, pmu_number in SMU_THROUGH_RPM.items():
            if pmu_number == ch.number:
                self._drive(self.smus[smu_number])

    def _execute(self) -> None:
        """Run every channel whose output is on, on one time base: all are checked whole before
        any is applied; a channel holding its RPM drives the lines on its row (a pulse channel on
        a word line is that line's gate). A test starts with no data, so a refused one leaves none."""
        for ch in self.pmu.values():
            ch.data = []
        running = [ch for ch in self.pmu.values() if ch.output]
        compiled = [self._compile(ch) for ch in running]
        gates = {ch.terminal: pieces for ch, (pieces, _w) in zip(running, compiled) if ch.rpm == RPM_PULSE}
        for ch, (pieces, windows) in zip(running, compiled):
            self._apply(ch, pieces, windows, gates)

    def _compile(self, ch: PMUChannel) -> tuple[list[waveform.Piece], list[tuple[int, float, float]]]:
        """The waveform of ``ch``'s sequence list and its measure windows (type, start, stop in
        waveform time), checked whole."""
        if not ch.sequence_list:
            raise AnalyzerError(E_STATE, ":PMU:EXECUTE: no sequence list (:PMU:SARB:WFM:SEQ:LIST)")
        pieces: list[waveform.Piece] = []
        windows: list[tuple[int, float, float]] = []  # (measure type, start, stop) in waveform time
        t = 0.0
        previous: float | None = None
        for seq_id, loops in ch.sequence_list:
            seq = ch.sequences.get(seq_id)
            if seq is None:
                raise AnalyzerError(E_STATE, f":PMU:EXECUTE: sequence {seq_id} is not defined")
            n = len(seq.time)
            if n == 0 or any(len(x) != n for x in (seq.startv, seq.stopv)):
                raise AnalyzerError(E_STATE, f"sequence {seq_id}: TIME, STARTV and STOPV need one value per segment")
            types = seq.meas_type or [0] * n
            starts = seq.meas_start or [0.0] * n
            stops = seq.meas_stop or [0.0] * n
            if any(len(x) != n for x in (types, starts, stops)):
                raise AnalyzerError(E_STATE, f"sequence {seq_id}: MEAS:TYPE/START/STOP need one value per segment")
            if loops * n > MAX_POINTS:
                raise AnalyzerError(E_SAMPLES, f"sequence {seq_id} x {loops} loops: too long to emulate")
            for _ in range(loops):
                for k in range(n):
                    if previous is not None and seq.startv[k] != previous:
                        raise AnalyzerError(E_SEGMENT, f"seg_arb_sequence(): PMU segment start value "
                                            f"{seq.startv[k]:g}V at index {k + 1} does not match previous "
                                            f"segment stop value of {previous:g}V")
                    previous = seq.stopv[k]
                    if types[k]:
                        if not 0.0 <= starts[k] < stops[k] <= seq.time[k] * (1 + 1e-9):
                            raise AnalyzerError(E_STATE, f"sequence {seq_id} segment {k + 1}: measure window "
                                                f"[{starts[k]:g}, {stops[k]:g}] s outside the segment")
                        windows.append((types[k], t + starts[k], t + min(stops[k], seq.time[k])))
                    pieces.append(waveform.Piece(seq.startv[k], seq.stopv[k], seq.time[k]))
                    t += seq.time[k]
        samples = sum(_grid(a, b, self.sample_rate).size for _, a, b in windows)
        if samples > MAX_POINTS:
            raise AnalyzerError(E_SAMPLES, f"{samples} samples exceed {MAX_POINTS}; "
                                "lower :PMU:SAMPLE:RATE or the measure windows")
        return pieces, windows

    def _apply(self, ch: PMUChannel, pieces: list[waveform.Piece], windows: list[tuple[int, float, float]],
               gates: dict[str, list[waveform.Piece]]) -> None:
        """Apply ``ch``'s waveform on the bench (if its RPM holds the row) and keep its samples:
        ``V,I,T,S`` per point, S the status word of the 4200A's pulse_fetch bit map (RPM in use,
        measure type, current overflow, current range, channel)."""
        # Sample grid of every window; averaged types are treated as their discrete form per window.
        grids = [_grid(a, b, self.sample_rate) for _, a, b in windows]
        times = np.concatenate(grids) if grids else np.zeros(0)
        currents = np.zeros(times.size)
        if ch.rpm == RPM_PULSE:
            order = np.argsort(times, kind="stable")
            currents[order] = waveform.run(self.bench, ch.terminal, pieces, times[order], gates)
        levels = _levels(pieces, times)
        at = 0
        for (kind, start, _stop), grid in zip(windows, grids):
            i = currents[at:at + grid.size].tolist()
            v = levels[at:at + grid.size].tolist()
            at += grid.size
            if kind in (1, 3):  # spot mean: one point per window
                mean = spot_mean(i)
                ch.data.append((spot_mean(v), mean, start, self._status(ch, 1, mean)))
            else:
                ch.data.extend((vk, ik, tk, self._status(ch, 2, ik)) for vk, ik, tk in zip(v, i, grid.tolist()))

    @staticmethod
    def _status(ch: PMUChannel, kind: int, current: float) -> int:
        """A point's status word: bits 27-24 RPM (1), 19-16 measure type, 11-10 current overflow
        (1 negative, 2 positive), 7-4 current range, 3-2 voltage range (0: 10 V), 1-0 channel."""
        overflow = 0 if abs(current) <= 1.05 * ch.current_range else (2 if current > 0 else 1)
        voltage = 0 if ch.source_range == 10.0 else 1
        return ((1 << 24) | (kind << 16) | (overflow << 10) | (CURRENT_RANGES[ch.current_range] << 4)
                | (voltage << 2) | ch.number)

    def _data_get(self, args: list[str]) -> str:
        need(args, 1, ":PMU:DATA:GET", E_PARAMETER)
        ch = self._pmu_channel(args[0])
        start = integer(args[1], "start index", 0, MAX_POINTS, E_PARAMETER) if len(args) > 1 else 0
        count = integer(args[2], "number of points", 1, MAX_GET, E_PARAMETER) if len(args) > 2 else MAX_GET
        fields = [a.strip().upper() for a in args[3:]] or ["V", "I", "T", "S"]
        allowed = {"V": 0, "I": 1, "T": 2, "S": 3}
        for f in fields:
            if f not in allowed:
                raise AnalyzerError(E_PARAMETER, f"requested value {f[:8]!r}: V, I, T or S")
        rows = ch.data[start:start + count]
        return ";".join(",".join(str(p[3]) if f == "S" else reading(p[allowed[f]]) for f in fields) for p in rows)


def _grid(start: float, stop: float, rate: float) -> np.ndarray:
    """Sample instants of a measure window [start, stop] s at ``rate`` S/s: the middle of each sample
    period, so no sample falls on a segment boundary (at least one sample per window)."""
    n = min(max(int((stop - start) * rate), 1), MAX_POINTS + 1)
    return start + (np.arange(n) + 0.5) * ((stop - start) / n)


def _levels(pieces: list[waveform.Piece], times: np.ndarray) -> np.ndarray:
    """The programmed voltage of the waveform at each of ``times`` (s)."""
    edges = np.cumsum([0.0] + [p.duration for p in pieces])
    levels = [pieces[0].start] + [p.stop for p in pieces]
    return np.interp(times, edges, levels)
