"""The Keysight B1530A WGFMU as its vendor library presents it (WGFMU Instrument Library,
``wgfmu.h``), in two implementations with one interface:

- :class:`VendorWGFMU`: a ctypes binding that loads Keysight's library where it is installed
  (``wgfmu.dll`` on Windows, ``libwgfmu.so`` elsewhere); :class:`WGFMUNotInstalled` says so when
  it is absent;
- :class:`EmulatedWGFMU`: the same functions over the emulated B1500A (emulator/instruments), which
  keeps patterns and sequences on the host and downloads the compiled waveform at execute, as the
  vendor library does; its wire lines are the emulator's own (the vendor's are not published).

Both expose the C functions under their C names, with the C arguments in the C order; where C
returns values through pointers, the Python call returns ``(status, value, ...)``. ``status`` is
the C return code (``WGFMU_NO_ERROR`` = 0). Code written against one runs on the other, so a
measurement written for the emulator runs on a real WGFMU where the vendor library is installed.

Names and signatures were checked against public bindings of the library (docs/instruments.md,
"Keysight B1500A"); the numeric error codes below could not be checked against the guide.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import InstrumentConnectionError

# -- constants (wgfmu.h) ---------------------------------------------------------------------------
WGFMU_NO_ERROR = 0
WGFMU_PARAMETER_OUT_OF_RANGE_ERROR = -1
WGFMU_ILLEGAL_STRING_ERROR = -2
WGFMU_CONTEXT_ERROR = -3
WGFMU_FUNCTION_NOT_SUPPORTED_ERROR = -4
WGFMU_COMMUNICATION_ERROR = -5
WGFMU_FW_ERROR = -6
WGFMU_LIBRARY_ERROR = -7
WGFMU_ERROR = -8
WGFMU_CHANNEL_NOT_FOUND_ERROR = -9
WGFMU_PATTERN_NOT_FOUND_ERROR = -10
WGFMU_EVENT_NOT_FOUND_ERROR = -11
WGFMU_PATTERN_ALREADY_EXISTS_ERROR = -12

WGFMU_OPERATION_MODE_DC = 2000
WGFMU_OPERATION_MODE_FASTIV = 2001
WGFMU_OPERATION_MODE_PG = 2002
WGFMU_OPERATION_MODE_SMU = 2003
WGFMU_FORCE_VOLTAGE_RANGE_AUTO = 3000
WGFMU_FORCE_VOLTAGE_RANGE_3V = 3001
WGFMU_FORCE_VOLTAGE_RANGE_5V = 3002
WGFMU_FORCE_VOLTAGE_RANGE_10V_NEGATIVE = 3003
WGFMU_FORCE_VOLTAGE_RANGE_10V_POSITIVE = 3004
WGFMU_MEASURE_MODE_VOLTAGE = 4000
WGFMU_MEASURE_MODE_CURRENT = 4001
WGFMU_MEASURE_CURRENT_RANGE_1UA = 6001
WGFMU_MEASURE_CURRENT_RANGE_10UA = 6002
WGFMU_MEASURE_CURRENT_RANGE_100UA = 6003
WGFMU_MEASURE_CURRENT_RANGE_1MA = 6004
WGFMU_MEASURE_CURRENT_RANGE_10MA = 6005
WGFMU_STATUS_COMPLETED = 10000
WGFMU_STATUS_DONE = 10001
WGFMU_STATUS_RUNNING = 10002
WGFMU_MEASURE_EVENT_DATA_AVERAGED = 12000
WGFMU_MEASURE_EVENT_DATA_RAW = 12001

#: Time resolution of vectors and events, s; the force range, V.
TIME_STEP = 10e-9
VOLTAGE_RANGE = 10.0
#: Breakpoints and samples the emulated library sends at most per channel.
MAX_POINTS = 65536


class WGFMUError(RuntimeError):
    """A WGFMU library call returned an error code; ``code`` is that code."""

    def __init__(self, function: str, code: int, detail: str) -> None:
        self.function = function
        self.code = code
        super().__init__(f"{function}: {code}: {detail}")


class WGFMUNotInstalled(InstrumentConnectionError):
    """Keysight's WGFMU library is not installed where it was looked for."""


class WGFMULibrary(Protocol):
    """The functions of the WGFMU library this project uses (C names; out-parameters returned)."""

    def WGFMU_openSession(self, address: str) -> int: ...
    def WGFMU_closeSession(self) -> int: ...
    def WGFMU_initialize(self) -> int: ...
    def WGFMU_clear(self) -> int: ...
    def WGFMU_setOperationMode(self, channel_id: int, mode: int) -> int: ...
    def WGFMU_setForceVoltageRange(self, channel_id: int, range_: int) -> int: ...
    def WGFMU_setMeasureMode(self, channel_id: int, mode: int) -> int: ...
    def WGFMU_setMeasureCurrentRange(self, channel_id: int, range_: int) -> int: ...
    def WGFMU_createPattern(self, pattern_name: str, initial_voltage: float) -> int: ...
    def WGFMU_addVector(self, pattern_name: str, delta_time: float, voltage: float) -> int: ...
    def WGFMU_addVectors(self, pattern_name: str, delta_times: Sequence[float], voltages: Sequence[float],
                         size: int) -> int: ...
    def WGFMU_setMeasureEvent(self, pattern_name: str, event_name: str, time: float, measurement_points: int,
                              measurement_interval: float, averaging_time: float, raw_data: int) -> int: ...
    def WGFMU_addSequence(self, channel_id: int, pattern_name: str, loop_count: float) -> int: ...
    def WGFMU_connect(self, channel_id: int) -> int: ...
    def WGFMU_disconnect(self, channel_id: int) -> int: ...
    def WGFMU_execute(self) -> int: ...
    def WGFMU_abort(self) -> int: ...
    def WGFMU_waitUntilCompleted(self) -> int: ...
    def WGFMU_getStatus(self) -> tuple[int, int, float, float]: ...
    def WGFMU_getMeasureValueSize(self, channel_id: int) -> tuple[int, int, int]: ...
    def WGFMU_getMeasureValues(self, channel_id: int, offset: int, size: int) -> tuple[int, list[float], list[float]]: ...
    def WGFMU_getErrorSize(self) -> tuple[int, int]: ...
    def WGFMU_getError(self) -> tuple[int, str]: ...


def check(library: WGFMULibrary, function: str, status: int) -> None:
    """Raise WGFMUError for a negative status, with the library's own error text."""
    if status >= 0:
        return
    try:
        _, text = library.WGFMU_getError()
    except Exception:  # noqa: BLE001 - the error text is a courtesy
        text = ""
    raise WGFMUError(function, status, text or "no error text")


# -- (a) the vendor library through ctypes ------------------------------------------------------------
def vendor_library_names() -> list[str]:
    """File names tried, in order, for Keysight's library on this platform."""
    if sys.platform.startswith("win"):
        return ["wgfmu.dll", "wgfmu"]
    found = ctypes.util.find_library("wgfmu")
    return [n for n in (found, "libwgfmu.so") if n]


class VendorWGFMU:
    """Keysight's WGFMU library, loaded with ctypes. WGFMUNotInstalled when it is absent."""

    _SIGNATURES: dict[str, list[Any]] = {
        "WGFMU_openSession": [ctypes.c_char_p], "WGFMU_closeSession": [], "WGFMU_initialize": [],
        "WGFMU_clear": [], "WGFMU_setOperationMode": [ctypes.c_int, ctypes.c_int],
        "WGFMU_setForceVoltageRange": [ctypes.c_int, ctypes.c_int],
        "WGFMU_setMeasureMode": [ctypes.c_int, ctypes.c_int],
        "WGFMU_setMeasureCurrentRange": [ctypes.c_int, ctypes.c_int],
        "WGFMU_createPattern": [ctypes.c_char_p, ctypes.c_double],
        "WGFMU_addVector": [ctypes.c_char_p, ctypes.c_double, ctypes.c_double],
        "WGFMU_addVectors": [ctypes.c_char_p, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double),
                             ctypes.c_int],
        "WGFMU_setMeasureEvent": [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_double, ctypes.c_int,
                                  ctypes.c_double, ctypes.c_double, ctypes.c_int],
        "WGFMU_addSequence": [ctypes.c_int, ctypes.c_char_p, ctypes.c_double],
        "WGFMU_connect": [ctypes.c_int], "WGFMU_disconnect": [ctypes.c_int], "WGFMU_execute": [],
        "WGFMU_abort": [], "WGFMU_waitUntilCompleted": [],
        "WGFMU_getStatus": [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double),
                            ctypes.POINTER(ctypes.c_double)],
        "WGFMU_getMeasureValueSize": [ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)],
        "WGFMU_getMeasureValues": [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                   ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)],
        "WGFMU_getErrorSize": [ctypes.POINTER(ctypes.c_int)],
        "WGFMU_getError": [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)],
    }

    def __init__(self, names: Sequence[str] | None = None) -> None:
        tried = list(names) if names is not None else vendor_library_names()
        self._lib: Any = None
        for name in tried:
            try:
                self._lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self._lib is None:
            raise WGFMUNotInstalled("WGFMU", "(load library)",
                                    f"Keysight's WGFMU library is not installed (tried {', '.join(tried) or 'nothing'}); "
                                    "install the B1530A Instrument Library, or use the emulated library on the emulator")
        for fn, argtypes in self._SIGNATURES.items():
            f = getattr(self._lib, fn)
            f.argtypes, f.restype = argtypes, ctypes.c_int

    def __getattr__(self, name: str) -> Any:
        if name.startswith("WGFMU_") and name in self._SIGNATURES:
            f = getattr(self._lib, name)
            return lambda *args: f(*(a.encode() if isinstance(a, str) else a for a in args))
        raise AttributeError(name)

    def WGFMU_addVectors(self, pattern_name: str, delta_times: Sequence[float], voltages: Sequence[float],
                         size: int) -> int:
        dt = (ctypes.c_double * size)(*delta_times)
        v = (ctypes.c_double * size)(*voltages)
        return int(self._lib.WGFMU_addVectors(pattern_name.encode(), dt, v, size))

    def WGFMU_getStatus(self) -> tuple[int, int, float, float]:
        status, elapsed, total = ctypes.c_int(), ctypes.c_double(), ctypes.c_double()
        ret = self._lib.WGFMU_getStatus(ctypes.byref(status), ctypes.byref(elapsed), ctypes.byref(total))
        return int(ret), status.value, elapsed.value, total.value

    def WGFMU_getMeasureValueSize(self, channel_id: int) -> tuple[int, int, int]:
        measured, total = ctypes.c_int(), ctypes.c_int()
        ret = self._lib.WGFMU_getMeasureValueSize(channel_id, ctypes.byref(measured), ctypes.byref(total))
        return int(ret), measured.value, total.value

    def WGFMU_getMeasureValues(self, channel_id: int, offset: int, size: int) -> tuple[int, list[float], list[float]]:
        n = ctypes.c_int(size)
        t, v = (ctypes.c_double * size)(), (ctypes.c_double * size)()
        ret = self._lib.WGFMU_getMeasureValues(channel_id, offset, ctypes.byref(n), t, v)
        return int(ret), list(t[: n.value]), list(v[: n.value])

    def WGFMU_getErrorSize(self) -> tuple[int, int]:
        size = ctypes.c_int()
        return int(self._lib.WGFMU_getErrorSize(ctypes.byref(size))), size.value

    def WGFMU_getError(self) -> tuple[int, str]:
        ret, size = self.WGFMU_getErrorSize()
        buffer = ctypes.create_string_buffer(max(size, 1) + 1)
        n = ctypes.c_int(len(buffer))
        ret = self._lib.WGFMU_getError(buffer, ctypes.byref(n))
        return int(ret), buffer.value.decode(errors="replace")


# -- (b) the same functions over the emulated B1500A --------------------------------------------------
@dataclass
class _Pattern:
    initial: float
    vectors: list[tuple[float, float]] = field(default_factory=list)  # (delta time s, V)
    events: list[tuple[str, float, int, float, float, int]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return math.fsum(dt for dt, _ in self.vectors)


class EmulatedWGFMU:
    """The WGFMU library's functions on the emulated B1500A (channel 401). Blocking, like the vendor
    library; one session at a time."""

    def __init__(self) -> None:
        self._session: Any = None
        self._lock = threading.Lock()
        self._errors: list[str] = []
        self._reset_setup()
        self._mode: dict[int, int] = {}
        self._measure: dict[int, int] = {}
        self._data: dict[int, tuple[list[float], list[float]]] = {}

    def _reset_setup(self) -> None:
        self._patterns: dict[str, _Pattern] = {}
        self._sequences: dict[int, list[tuple[str, int]]] = {}

    def _fail(self, code: int, function: str, text: str) -> int:
        self._errors.append(f"{function}: {text}")
        return code

    def _ask(self, line: str) -> str:
        with self._lock:
            return str(self._session.query(line)).strip()

    def _flex_error(self, function: str, before: str | None = None) -> int:
        """The emulated B1500A's FLEX error queue (ERR? answers four codes), read in the same
        message as the commands ``before`` it when given."""
        query = "ERR?" if before is None else f"{before};ERR?"
        codes = [int(c) for c in self._ask(query).split(",") if c.strip()]
        bad = [c for c in codes if c != 0]
        if bad:
            messages = [self._ask(f"EMG? {c}").strip('"') for c in bad]
            return self._fail(WGFMU_FW_ERROR, function, "; ".join(f"{c} {m}" for c, m in zip(bad, messages)))
        return WGFMU_NO_ERROR

    # -- session -----------------------------------------------------------------------------------
    def WGFMU_openSession(self, address: str) -> int:
        from .visa import _set_nodelay, resource_manager  # the process's pyvisa-py resource manager

        try:
            session = resource_manager().open_resource(address, read_termination="\n", write_termination="\n",
                                                       timeout=10_000)
        except Exception as exc:  # noqa: BLE001 - any VISA failure is a communication error
            return self._fail(WGFMU_COMMUNICATION_ERROR, "WGFMU_openSession", f"{address}: {exc}")
        if address.upper().startswith("TCPIP"):
            _set_nodelay(session)  # writes followed by a query: no delayed-ACK stall
        self._session = session
        try:
            idn = self._ask("*IDN?")
        except Exception as exc:  # noqa: BLE001 - a timeout or reset is a communication error
            self.WGFMU_closeSession()
            return self._fail(WGFMU_COMMUNICATION_ERROR, "WGFMU_openSession", f"{address}: {exc}")
        if ",B1500A," not in idn.upper():
            self.WGFMU_closeSession()
            return self._fail(WGFMU_COMMUNICATION_ERROR, "WGFMU_openSession",
                              f"{address} is not an emulated B1500A (*IDN? {idn[:60]!r})")
        status = self._flex_error("WGFMU_openSession", "WGFMU:CLEAR")
        if status != WGFMU_NO_ERROR:
            self.WGFMU_closeSession()
            return self._fail(WGFMU_COMMUNICATION_ERROR, "WGFMU_openSession",
                              f"{address} is not an emulated B1500A (it does not know the emulator's WGFMU lines)")
        return WGFMU_NO_ERROR

    def WGFMU_closeSession(self) -> int:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing a dead session
                pass
        return WGFMU_NO_ERROR

    def _need_session(self, function: str) -> int | None:
        if self._session is None:
            return self._fail(WGFMU_CONTEXT_ERROR, function, "no session (WGFMU_openSession first)")
        return None

    def WGFMU_initialize(self) -> int:
        if (bad := self._need_session("WGFMU_initialize")) is not None:
            return bad
        self._mode.clear()
        self._measure.clear()
        return self._flex_error("WGFMU_initialize", "WGFMU:CLEAR")

    def WGFMU_clear(self) -> int:
        self._reset_setup()
        self._data.clear()
        return WGFMU_NO_ERROR

    # -- channel setup -------------------------------------------------------------------------------
    def WGFMU_setOperationMode(self, channel_id: int, mode: int) -> int:
        if mode not in (2000, 2001, 2002, 2003):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_setOperationMode", f"mode {mode}")
        self._mode[channel_id] = mode
        return WGFMU_NO_ERROR

    def WGFMU_setForceVoltageRange(self, channel_id: int, range_: int) -> int:
        if not 3000 <= range_ <= 3004:
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_setForceVoltageRange", f"range {range_}")
        return WGFMU_NO_ERROR

    def WGFMU_setMeasureMode(self, channel_id: int, mode: int) -> int:
        if mode not in (4000, 4001):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_setMeasureMode", f"mode {mode}")
        self._measure[channel_id] = mode
        return WGFMU_NO_ERROR

    def WGFMU_setMeasureCurrentRange(self, channel_id: int, range_: int) -> int:
        if not 6001 <= range_ <= 6005:
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_setMeasureCurrentRange", f"range {range_}")
        return WGFMU_NO_ERROR

    def WGFMU_connect(self, channel_id: int) -> int:
        if (bad := self._need_session("WGFMU_connect")) is not None:
            return bad
        # The mode goes with the connect: it decides whether the channel's RSU takes its output
        # from the WGFMU or from the SMU it also carries (WGFMU_OPERATION_MODE_SMU).
        mode = self._mode.get(channel_id, WGFMU_OPERATION_MODE_FASTIV)
        return self._flex_error("WGFMU_connect", f"WGFMU:MODE {channel_id},{mode};WGFMU:CONN {channel_id}")

    def WGFMU_disconnect(self, channel_id: int) -> int:
        if (bad := self._need_session("WGFMU_disconnect")) is not None:
            return bad
        return self._flex_error("WGFMU_disconnect", f"WGFMU:DISC {channel_id}")

    # -- patterns and sequences (host side, as in the vendor library) --------------------------------
    def WGFMU_createPattern(self, pattern_name: str, initial_voltage: float) -> int:
        if not pattern_name or not pattern_name.isprintable() or "," in pattern_name:
            return self._fail(WGFMU_ILLEGAL_STRING_ERROR, "WGFMU_createPattern", f"name {pattern_name!r}")
        if pattern_name in self._patterns:
            return self._fail(WGFMU_PATTERN_ALREADY_EXISTS_ERROR, "WGFMU_createPattern", pattern_name)
        if not (math.isfinite(initial_voltage) and abs(initial_voltage) <= VOLTAGE_RANGE):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_createPattern", f"{initial_voltage!r} V")
        self._patterns[pattern_name] = _Pattern(float(initial_voltage))
        return WGFMU_NO_ERROR

    def WGFMU_addVector(self, pattern_name: str, delta_time: float, voltage: float) -> int:
        pattern = self._patterns.get(pattern_name)
        if pattern is None:
            return self._fail(WGFMU_PATTERN_NOT_FOUND_ERROR, "WGFMU_addVector", pattern_name)
        if not (math.isfinite(delta_time) and TIME_STEP <= delta_time <= 1e4):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_addVector", f"delta time {delta_time!r} s")
        if not (math.isfinite(voltage) and abs(voltage) <= VOLTAGE_RANGE):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_addVector", f"voltage {voltage!r} V")
        if len(pattern.vectors) >= MAX_POINTS - 1:
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_addVector", "too many vectors")
        pattern.vectors.append((float(delta_time), float(voltage)))
        return WGFMU_NO_ERROR

    def WGFMU_addVectors(self, pattern_name: str, delta_times: Sequence[float], voltages: Sequence[float],
                         size: int) -> int:
        for dt, v in zip(list(delta_times)[:size], list(voltages)[:size]):
            status = self.WGFMU_addVector(pattern_name, dt, v)
            if status != WGFMU_NO_ERROR:
                return status
        return WGFMU_NO_ERROR

    def WGFMU_setMeasureEvent(self, pattern_name: str, event_name: str, time: float, measurement_points: int,
                              measurement_interval: float, averaging_time: float, raw_data: int) -> int:
        pattern = self._patterns.get(pattern_name)
        function = "WGFMU_setMeasureEvent"
        if pattern is None:
            return self._fail(WGFMU_PATTERN_NOT_FOUND_ERROR, function, pattern_name)
        if raw_data not in (WGFMU_MEASURE_EVENT_DATA_AVERAGED, WGFMU_MEASURE_EVENT_DATA_RAW):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, function, f"rawData {raw_data}")
        numbers = (time, measurement_interval, averaging_time)
        if (not all(math.isfinite(x) for x in numbers) or time < 0 or measurement_points < 1
                or measurement_interval < TIME_STEP or not 0 <= averaging_time <= measurement_interval):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, function,
                              f"time {time!r}, points {measurement_points!r}, interval {measurement_interval!r}, "
                              f"average {averaging_time!r}")
        end = time + measurement_interval * (measurement_points - 1) + max(averaging_time, TIME_STEP)
        if end > pattern.duration * (1 + 1e-9):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, function,
                              f"event ends at {end:g} s, after the pattern ({pattern.duration:g} s)")
        pattern.events.append((event_name, float(time), int(measurement_points), float(measurement_interval),
                               float(averaging_time), int(raw_data)))
        return WGFMU_NO_ERROR

    def WGFMU_addSequence(self, channel_id: int, pattern_name: str, loop_count: float) -> int:
        if pattern_name not in self._patterns:
            return self._fail(WGFMU_PATTERN_NOT_FOUND_ERROR, "WGFMU_addSequence", pattern_name)
        if not (loop_count >= 1 and loop_count == int(loop_count) and loop_count <= 1e6):
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_addSequence", f"loop count {loop_count!r}")
        self._sequences.setdefault(channel_id, []).append((pattern_name, int(loop_count)))
        return WGFMU_NO_ERROR

    # -- execution -----------------------------------------------------------------------------------
    def WGFMU_execute(self) -> int:
        if (bad := self._need_session("WGFMU_execute")) is not None:
            return bad
        self._data.clear()
        lines = ["WGFMU:CLEAR"]
        for channel_id, sequence in self._sequences.items():
            compiled = self._compile(sequence)
            if isinstance(compiled, int):
                return compiled
            wave, events = compiled
            lines.append(f"WGFMU:MODE {channel_id},{self._mode.get(channel_id, WGFMU_OPERATION_MODE_FASTIV)}")
            lines.append(f"WGFMU:MEASMODE {channel_id},{self._measure.get(channel_id, WGFMU_MEASURE_MODE_CURRENT)}")
            lines.append(f"WGFMU:WAVE {channel_id},{wave[0][1]!r}," + ",".join(f"{dt!r},{v!r}" for dt, v in wave[1:]))
            lines += [f"WGFMU:EVENT {channel_id},{s!r},{n},{dt!r},{avg!r}" for s, n, dt, avg in events]
        lines.append("WGFMU:RUN")
        # One program message (FLEX runs ';'-separated commands in order) ending in the error query.
        return self._flex_error("WGFMU_execute", ";".join(lines))

    def _compile(self, sequence: list[tuple[str, int]]) -> tuple[list[tuple[float, float]], list[tuple[float, int, float, float]]] | int:
        """The channel's waveform as (delta time s, V) vectors after a first (0, initial V), and its
        events in absolute time. Deltas, not absolute times, go to the instrument, so a pulse is
        exactly as wide as its vector says."""
        wave: list[tuple[float, float]] = []
        events: list[tuple[float, int, float, float]] = []
        t = 0.0
        for name, loops in sequence:
            pattern = self._patterns[name]
            for _ in range(loops):
                if not wave:
                    wave.append((0.0, pattern.initial))
                elif wave[-1][1] != pattern.initial:
                    return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_execute",
                                      f"pattern {name!r} starts at {pattern.initial:g} V, the previous ends at {wave[-1][1]:g} V")
                events += [(t + start, n, dt, avg) for _e, start, n, dt, avg, _raw in pattern.events]
                for dt, v in pattern.vectors:
                    t += dt
                    wave.append((dt, v))
                if len(wave) > MAX_POINTS:
                    return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_execute", "waveform too long to emulate")
        return wave, events

    def WGFMU_abort(self) -> int:
        return WGFMU_NO_ERROR  # an emulated run completes within execute

    def WGFMU_waitUntilCompleted(self) -> int:
        if (bad := self._need_session("WGFMU_waitUntilCompleted")) is not None:
            return bad
        if self._sequences and int(self._ask("WGFMU:STATUS?")) != WGFMU_STATUS_COMPLETED:  # the whole module
            return self._fail(WGFMU_ERROR, "WGFMU_waitUntilCompleted", "the run did not complete")
        return WGFMU_NO_ERROR

    def WGFMU_getStatus(self) -> tuple[int, int, float, float]:
        return WGFMU_NO_ERROR, WGFMU_STATUS_COMPLETED, 0.0, 0.0

    def _fetch(self, channel_id: int) -> tuple[list[float], list[float]]:
        if channel_id not in self._data:
            reply = self._ask(f"WGFMU:DATA? {channel_id}")
            pairs = [p.split(",") for p in reply.split(";") if p.strip()]
            self._data[channel_id] = ([float(a) for a, _ in pairs], [float(b) for _, b in pairs])
        return self._data[channel_id]

    def WGFMU_getMeasureValueSize(self, channel_id: int) -> tuple[int, int, int]:
        if (bad := self._need_session("WGFMU_getMeasureValueSize")) is not None:
            return bad, 0, 0
        times, _ = self._fetch(channel_id)
        return WGFMU_NO_ERROR, len(times), len(times)

    def WGFMU_getMeasureValues(self, channel_id: int, offset: int, size: int) -> tuple[int, list[float], list[float]]:
        if (bad := self._need_session("WGFMU_getMeasureValues")) is not None:
            return bad, [], []
        times, values = self._fetch(channel_id)
        if not 0 <= offset <= len(times) or size < 0:
            return self._fail(WGFMU_PARAMETER_OUT_OF_RANGE_ERROR, "WGFMU_getMeasureValues",
                              f"offset {offset}, size {size} of {len(times)}"), [], []
        return WGFMU_NO_ERROR, times[offset:offset + size], values[offset:offset + size]

    # -- errors ---------------------------------------------------------------------------------------
    def WGFMU_getErrorSize(self) -> tuple[int, int]:
        return WGFMU_NO_ERROR, len("\n".join(self._errors))

    def WGFMU_getError(self) -> tuple[int, str]:
        text, self._errors = "\n".join(self._errors), []
        return WGFMU_NO_ERROR, text


def open_library(kind: str = "auto") -> WGFMULibrary:
    """The WGFMU library: "vendor" (Keysight's, WGFMUNotInstalled if absent), "emulated", or "auto"
    (the vendor's where installed, else the emulated one)."""
    if kind == "emulated":
        return EmulatedWGFMU()
    if kind == "vendor":
        return VendorWGFMU()  # type: ignore[return-value]
    if kind != "auto":
        raise ValueError(f"kind={kind!r}: expected 'auto', 'vendor' or 'emulated'")
    try:
        return VendorWGFMU()  # type: ignore[return-value]
    except WGFMUNotInstalled:
        return EmulatedWGFMU()
