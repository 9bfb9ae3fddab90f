"""Third-party clients on the emulations: PyMeasure's own Keithley2400 and Keithley2600 drivers
(unmodified, pyvisa-py TCPIP SOCKET resources) identify the emulated 2400 and 2602B, set a voltage
with compliance, read a current and see an error after a bad command. PyMeasure is blocking, so it
runs in a worker thread while the emulated servers serve on the event loop."""
from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

import emulator
from emulator.instruments import InstrumentBench
from labctl.core.limits import SafetyLimits
from labctl.instruments import Keithley2400 as LabctlKeithley2400
from labctl.instruments import Keithley3706A
from pymeasure.instruments.keithley import Keithley2400, Keithley2600

from helpers import form_and_reset_cell as form_and_reset
from helpers import route_3706a as route

ROWS, COLS = 8, 4
BENCH_SEED = 9
VISA = dict(visa_library="@py", read_termination="\n", write_termination="\n", timeout=5000)


def prepared(seed: int) -> emulator.Array:
    """A twin of the bench's array with cell (2, 1) formed and reset."""
    a = emulator.Array(ROWS, COLS, seed=seed)
    form_and_reset(a)
    return a


def pymeasure_2400(resource: str) -> dict[str, object]:
    smu = Keithley2400(resource, **VISA)
    try:
        out: dict[str, object] = {"id": smu.id}
        smu.source_mode = "voltage"
        smu.compliance_current = 1e-4
        smu.source_voltage = 0.2
        smu.enable_source()
        out["compliance"] = smu.compliance_current
        out["current"] = smu.current
        smu.write(":SOUR:VOLT:FROBNICATE 1")
        out["errors"] = smu.check_errors()
        out["after"] = smu.check_errors()
        smu.disable_source()
        out["output_after"] = smu.source_enabled  # a query: the instrument has handled all before it
        return out
    finally:
        smu.adapter.close()


def pymeasure_2600(resource: str) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyMeasure warns that it does not know whether TSP is SCPI
        smu = Keithley2600(resource, **VISA)
    try:
        out: dict[str, object] = {"id": smu.id}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            smu.ChA.apply_voltage(compliance_current=1e-4)
        smu.ChA.source_voltage = 0.2
        smu.ChA.source_output = "ON"
        out["compliance"] = smu.ChA.compliance_current
        out["current"] = smu.ChA.current
        smu.write("smua.source.frobnicate = 1")
        out["errors"] = smu.check_errors()
        smu.ChA.source_output = "OFF"
        out["output_after"] = smu.ChA.source_output
        return out
    finally:
        smu.adapter.close()


async def run_on_routed_cell(terminal: str, client: Callable[[str], dict[str, object]], name: str,
                             state: Callable[[Any], tuple[float, float, bool]]) -> tuple[dict[str, object], float]:
    """Cell (2, 1) of a fresh array (formed and reset) routed by labctl's drivers: its bit line to
    ``terminal``, its gate at 3.3 V from the gate 2400; then ``client`` runs in a thread against
    instrument ``name``. Returns what it saw (with ``state`` of the emulated instrument afterwards:
    source level V, compliance A, output on) and the twin array's current at 0.2 V."""
    arr = emulator.Array(ROWS, COLS, seed=BENCH_SEED)
    form_and_reset(arr)
    expected = prepared(BENCH_SEED).read_current(2, 1, 0.2, vg=3.3)[0]
    async with InstrumentBench(arr) as bench:
        async with LabctlKeithley2400(bench["gate_2400"].resource,
                                      limits=SafetyLimits(max_abs_voltage=3.3, max_compliance=1e-4)) as gate, \
                Keithley3706A(bench["switch_3706a"].resource) as matrix:
            await gate.channel.source(3.3, 1e-4)
            await gate.channel.output.set(True)
            await matrix.exclusive_close(route(2, 1, terminal, "gate2400"))
            out = await asyncio.to_thread(client, bench[name].resource)
            out["state"] = state(bench[name].instrument)
            return out, float(expected)


async def test_pymeasure_keithley2400_on_the_emulated_2400() -> None:
    out, expected = await run_on_routed_cell("smu2400", pymeasure_2400, "smu_2400",
                                             lambda i: (i.level, i.compliance, i.output))
    assert out["state"] == (0.2, 1e-4, False) and out["output_after"] is False
    assert "MODEL 2400" in str(out["id"])
    assert out["compliance"] == 1e-4
    assert out["current"] == expected
    errors = out["errors"]
    assert isinstance(errors, list) and len(errors) == 1 and int(errors[0][0]) == -113
    assert "FROBNICATE" in str(errors[0][1])
    assert out["after"] == []  # the queue is empty once read


async def test_pymeasure_keithley2600_on_the_emulated_2602b() -> None:
    out, expected = await run_on_routed_cell(
        "smua", pymeasure_2600, "smu_2602b",
        lambda i: (i.smus["smua"].levelv, i.smus["smua"].limiti, i.smus["smua"].output))
    assert out["state"] == (0.2, 1e-4, False) and out["output_after"] == "OFF"
    assert "Model 2602B" in str(out["id"])
    assert out["compliance"] == 1e-4
    assert out["current"] == expected
    errors = out["errors"]
    assert isinstance(errors, list) and [code for code, _ in errors] == [-286]
    assert "frobnicate" in errors[0][1]
