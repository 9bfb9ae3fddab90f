"""SCPI parsing and the emulated instruments' command handling, without any network."""
from __future__ import annotations

import emulator
import pytest
from emulator.instruments import Bench
from emulator.instruments.keithley2450 import Keithley2450
from emulator.instruments.keithley707b import Keithley707B
from emulator.instruments.keysight_33500b import Keysight33522B
from emulator.instruments.keysight_b2900 import KeysightB2902A
from emulator.instruments.scpi import MAX_ERROR_TEXT, ErrorQueue, compile_pattern, match_nodes, split_header


@pytest.fixture
def bench() -> Bench:
    return Bench(emulator.Array(8, 4, seed=1))


def test_pattern_matches_short_long_optional_and_suffix() -> None:
    nodes = compile_pattern("[:SOURce[1|2]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    assert match_nodes(nodes, split_header(":SOUR:VOLT")) == [1, 0, 0, 0, 0]
    assert match_nodes(nodes, split_header("source2:voltage:level:immediate:amplitude")) == [2, 0, 0, 0, 0]
    assert match_nodes(nodes, split_header("volt:ampl")) == [1, 0, 0, 0, 0]
    assert match_nodes(nodes, split_header("SOUR3:VOLT")) is None  # suffix out of range
    assert match_nodes(nodes, split_header("SOURC:VOLT")) is None  # neither short nor long


def test_chained_relative_headers_case_insensitive(bench: Bench) -> None:
    smu = Keithley2450(bench)
    # After ":sour:volt:ilim" the current path is SOUR:VOLT, so "lev" means :SOUR:VOLT:LEV.
    assert smu.handle(":sour:volt:ilim 2e-4;lev 1.5;:sens:curr:nplc 0.5") is None
    assert smu.handle(":SOURCE:VOLTAGE?;:SOUR:VOLT:ILIM?;:SENS:CURR:NPLC?") == (
        "+1.500000E+00;+2.000000E-04;+5.000000E-01"
    )
    assert smu.handle(":SYST:ERR?") == '0,"No error"'
    smu.handle(":SOUR:VOLT 1;ILIM 1e-3")  # ILIM relative to SOUR: is not a header
    assert smu.handle(":SYST:ERR?").startswith("-113,")


def test_common_commands(bench: Bench) -> None:
    smu = Keithley2450(bench)
    assert smu.handle("*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
    smu.handle(":SOUR:VOLT 1")
    assert smu.handle("*RST;*OPC?") == "1"
    assert smu.handle(":SOUR:VOLT?") == "+0.000000E+00"
    smu.handle("BOGUS")
    smu.handle("*CLS")
    assert smu.handle(":SYST:ERR?") == '0,"No error"'


def test_error_queue_codes_in_order(bench: Bench) -> None:
    smu = KeysightB2902A(bench)
    smu.handle(":FOO:BAR 1;:SOUR1:VOLT 300;:SENS1:CURR:PROT;:SOUR1:VOLT abc")
    codes = [smu.handle(":SYST:ERR?").split(",")[0] for _ in range(5)]
    assert codes == ["-113", "-222", "-109", "-104", "+0"]
    # Keysight style: signed zero.
    assert smu.handle(":SYST:ERR?") == '+0,"No error"'


def test_error_queue_overflow_keeps_oldest() -> None:
    q = ErrorQueue(size=3)
    for code in (-1, -2, -3, -4, -5):
        q.push(code, "x")
    assert [q.pop()[0] for _ in range(4)] == [-1, -2, -350, 0]


def test_refused_setting_keeps_old_value_and_chain_continues(bench: Bench) -> None:
    pg = Keysight33522B(bench)
    pg.handle("OUTP1:LOAD INF;FUNC PULS;VOLT:LOW 0;VOLT:HIGH 1.0")
    pg.handle("VOLT:HIGH 9.0;:FUNC:PULS:WIDT 2e-6")  # 9 V beyond the array's 4 V
    assert pg.handle("VOLT:HIGH?") == "+1.000000E+00"
    assert pg.handle("FUNC:PULS:WIDT?") == "+2.000000E-06"
    assert pg.handle("SYST:ERR?").startswith("-222,")


def test_unit_suffixes_and_keywords(bench: Bench) -> None:
    pg = Keysight33522B(bench)
    pg.handle("FUNC:PULS:WIDT 2.5us;FUNC:PULS:PER 10US")
    assert pg.handle("FUNC:PULS:WIDT?;FUNC:PULS:PER?") == "+2.500000E-06;+1.000000E-05"
    smu = Keithley2450(bench)
    smu.handle(":SENS:CURR:NPLC MAX")
    assert smu.handle(":SENS:CURR:NPLC?") == "+1.000000E+01"


def test_707b_tsp_and_scpi(bench: Bench) -> None:
    matrix = Keithley707B(bench)
    matrix.handle('channel.close("1A01,1C05")')
    assert matrix.handle('print(channel.getclose("allslots"))') == "1A01;1C05"
    matrix.handle('channel.exclusiveclose("1B02")')
    assert matrix.handle('print(channel.getclose("allslots"))') == "1B02"
    matrix.handle(":ROUT:OPEN:ALL")
    assert matrix.handle('print(channel.getclose("allslots"))') == "nil"
    matrix.handle('channel.close("1Z99")')
    matrix.handle("channel.frobnicate()")
    assert float(matrix.handle("print(errorqueue.count)")) == 2
    first = matrix.handle("print(errorqueue.next())").split("\t")
    second = matrix.handle("print(errorqueue.next())").split("\t")
    assert int(float(first[0])) == -224 and int(float(second[0])) == -286
    assert matrix.handle("print(errorqueue.next())").split("\t")[1] == "Queue Is Empty"


def test_error_text_is_cut_to_the_scpi_maximum(bench: Bench) -> None:
    inst = Keithley2450(bench)
    inst.handle(":FROB" + "X" * 100_000)
    code, text = inst.errors.pop()
    assert code == -113 and len(text) == MAX_ERROR_TEXT and text.endswith("...")


def test_numeric_rounding_tolerance_is_relative_to_each_bound(bench: Bench) -> None:
    """'-0' and '1E-400' (0.0) used to pass the 33522B's 1 uHz frequency minimum, then divide by 0."""
    inst = Keysight33522B(bench)
    for text in ("-0", "1E-400", "0"):
        assert inst.handle(f":FREQ {text};:SYST:ERR?").startswith("-222,")
    assert inst.handle(":FUNC:PULS:WIDT 2.5us;:SYST:ERR?").startswith("+0,")
