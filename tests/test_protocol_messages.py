"""Payload layouts: every message packs and unpacks to itself; malformed payloads raise only
PayloadError; limits name the field, the value and the allowed range."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.protocols import messages as m
from labctl.protocols.cells import CellAddressError, Cells
from labctl.protocols.codes import Command, DType, Fault, FormMode, RunState, Status
from labctl.protocols.errors import PayloadError
from labctl.protocols.limits import LimitError, check_request

rng = np.random.default_rng(0)
CELLS = [Cells.all(), Cells.single(3, 1), Cells.list([0, 2, 5], [1, 1, 3]), Cells.region(1, 0, 2, 3)]

EXAMPLES: list[m.Message] = [
    m.HelloRequest(1, 2, 1 << 20, "pytest"), m.HelloReply(1, 1 << 24, "emu"),
    m.InfoRequest(), m.InfoReply(1, 8, 4, 1, 1 << 24, 500, 4.0, 3.6, 1e-9, 1.0, 1e-9, 10.0, 4.0,
                                 0.0, 3e-3, 100000, 100000, "fw 1", "cmo 8x4"),
    m.StatusRequest(), m.StatusReply(RunState.RUNNING, Command.SET_TARGET_G, 9, 10, 32, 0.25),
    m.AbortRequest(), m.AbortReply(True, Command.PULSE, 7), m.ResetRequest(), m.ResetReply(),
    m.ByeRequest(), m.ByeReply(), m.VerifyLoopMaxRequest(), m.VerifyLoopMaxRequest(123),
    m.VerifyLoopMaxReply(123),
    *[m.FormRequest(c, FormMode.PULSE_RAMP, 0.5, 3.6, 0.1, 1.2, 1e-6, 0.2, 3.3, 4e-6) for c in CELLS],
    m.FormReply(np.array([3.3, np.nan]), np.array([2e-4, np.nan]), np.array([8e-6, 1e-9]),
                np.array([True, False])),
    *[m.PulseRequest(c, -1.3, 3.3, 2.5e-6, 400) for c in CELLS], m.PulseReply(1200),
    m.ReadRequest(CELLS[2], 0.2, 3.3), m.ReadReply(rng.random(3), rng.random(3)),
    m.ReadArrayRequest(Cells.region(0, 0, 2, 2), 0.2, 3.3, DType.FLOAT32),
    m.ReadArrayReply(1, 2, rng.random((3, 5))),
    m.ReadArrayReply(0, 0, rng.random((2, 2)).astype(np.float32).astype(float), DType.FLOAT32),
    m.SweepRequest(CELLS[2], 3.3, 1e-3, np.linspace(0, -1.5, 16)), m.SweepReply(rng.random((3, 16))),
    m.SetTargetGRequest(CELLS[2], np.array([1e-5, 5e-5, 8e-5]), scheme=m.IdenticalPulse.reference()),
    m.SetTargetGRequest(CELLS[3], rng.random(6) * 1e-4, 0.002, 50, scheme=m.IncrementalStep()),
    m.SetTargetGRequest(CELLS[0], rng.random(32) * 1e-4),
    m.SetTargetGReply(rng.random(4), np.array([0, 1, 2, 70000]), np.array([1, 0, 1, 1], bool)),
    m.VerifyRequest(CELLS[1], np.array([2e-5]), 0.02, 0.2, 3.3, 4),
    m.VerifyReply(np.array([True, False]), rng.random(2)),
    m.EmuAdvanceRequest(3600.0), m.EmuAdvanceReply(3600.5),
    m.EmuInjectFaultRequest(CELLS[1], Fault.STUCK_LRS), m.EmuInjectFaultReply(),
    m.EmuReseedRequest(2**64 - 1), m.EmuReseedReply(),
    m.EmuPulseCountsRequest(CELLS[3]), m.EmuPulseCountsReply(np.array([0, 5, 2**40])),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip(msg: m.Message) -> None:
    again = type(msg).unpack(msg.pack())
    assert again == msg
    decode = m.decode_reply if msg.reply else m.decode_request
    assert decode(msg.command, msg.pack()) == msg


def test_every_command_has_a_request_and_a_reply() -> None:
    assert set(m.REQUESTS) == set(m.REPLIES) == set(Command)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda x: type(x).__name__)
def test_truncated_or_padded_payload_is_a_payload_error(msg: m.Message) -> None:
    wire = msg.pack()
    if wire:
        with pytest.raises(PayloadError):
            type(msg).unpack(wire[:-1])
    with pytest.raises(PayloadError, match="left after the last field"):
        type(msg).unpack(wire + b"\0")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(Command)), st.booleans(), st.binary(max_size=200))
def test_random_payloads_raise_only_payload_error(command: Command, reply: bool, payload: bytes) -> None:
    decode = m.decode_reply if reply else m.decode_request
    try:
        decode(command, payload)
    except PayloadError:
        pass


def test_unknown_command_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="0x7f"):
        m.decode_request(0x7F, b"")


def test_error_message_is_cut_at_the_limit_on_a_character_boundary() -> None:
    text = "é" * 2000
    packed = m.pack_error(text)
    assert len(packed) <= 1024 and m.unpack_error(packed) == "é" * (len(packed) // 2)


def test_reference_identical_pulse_table() -> None:
    v_set, v_reset = m.IdenticalPulse.reference().voltages_for(np.array([9e-6, 20e-6, 45e-6, 75e-6, 95e-6]))
    assert v_set.tolist() == [1.35, 1.35, 1.35, 1.5, 1.5]
    assert v_reset.tolist() == [-1.5, -1.5, -1.3, -1.3, -1.3]


def test_cells_visiting_order_and_validation() -> None:
    rows, cols = Cells.region(1, 2, 2, 2).indices((4, 4))
    assert rows.tolist() == [1, 1, 2, 2] and cols.tolist() == [2, 3, 2, 3]
    with pytest.raises(CellAddressError, match=r"\(4, 0\) outside the 4 x 4 array"):
        Cells.list([0, 4], [0, 0]).indices((4, 4))
    with pytest.raises(CellAddressError, match="more than once"):
        Cells.list([1, 1], [2, 2]).indices((4, 4))
    with pytest.raises(CellAddressError, match="outside"):
        Cells.region(3, 0, 2, 1).indices((4, 4))


INFO = EXAMPLES[3]
assert isinstance(INFO, m.InfoReply)


@pytest.mark.parametrize(("msg", "status", "match"), [
    (m.PulseRequest(Cells.single(0, 0), 4.5, 3.3, 1e-6), Status.OUT_OF_RANGE, r"v = 4.5 V outside \[-4, 4\] V"),
    (m.PulseRequest(Cells.single(0, 0), 1.0, 3.3, 0.0), Status.OUT_OF_RANGE, r"width = 0 s must be > 0 s"),
    (m.PulseRequest(Cells.single(0, 0), 1.0, 3.3, -1e-6), Status.OUT_OF_RANGE, "width"),
    (m.PulseRequest(Cells.single(0, 0), 1.0, 3.7, 1e-6), Status.OUT_OF_RANGE, "vg = 3.7 V"),
    (m.PulseRequest(Cells.single(0, 0), float("nan"), 3.3, 1e-6), Status.OUT_OF_RANGE, "finite"),
    (m.PulseRequest(Cells.single(8, 0), 1.0, 3.3, 1e-6), Status.BAD_CELLS, "outside the 8 x 4 array"),
    (m.PulseRequest(Cells.single(0, 0), 1.0, 3.3, 1e-6, 0), Status.OUT_OF_RANGE, "count = 0"),
    (m.ReadRequest(Cells.all(), 0.0), Status.OUT_OF_RANGE, "non-zero bias"),
    (m.SetTargetGRequest(Cells.all(), np.ones(3) * 1e-5), Status.BAD_PAYLOAD, "3 values for 32"),
    (m.SetTargetGRequest(Cells.single(0, 0), np.array([1e-5]), 1.5), Status.OUT_OF_RANGE, "tolerance"),
    (m.SetTargetGRequest(Cells.single(0, 0), np.array([-1e-5])), Status.OUT_OF_RANGE, "targets"),
    (m.SetTargetGRequest(Cells.single(0, 0), np.array([1e-5]),
                         scheme=m.IncrementalStep(v_stop_set=5.0)), Status.OUT_OF_RANGE, "v_stop_set"),
    (m.SweepRequest(Cells.single(0, 0), 1.2, 1e-3, np.array([0.0, 4.2])), Status.OUT_OF_RANGE, r"voltages\[1\]"),
    (m.FormRequest(Cells.all(), v_stop=5.0), Status.OUT_OF_RANGE, "v_stop"),
    (m.ReadArrayRequest(Cells.list([0], [0])), Status.BAD_CELLS, "not a cell list"),
    (m.EmuAdvanceRequest(-1.0), Status.OUT_OF_RANGE, "seconds"),
])
def test_limits_refuse_with_status_and_field(msg: m.Message, status: Status, match: str) -> None:
    with pytest.raises(LimitError, match=match) as err:
        check_request(msg, INFO)
    assert err.value.status == status


def test_limits_reply_size() -> None:
    with pytest.raises(LimitError, match="reply would be"):
        check_request(m.ReadArrayRequest(Cells.all()), INFO, max_reply=100)


@pytest.mark.parametrize("msg", [x for x in EXAMPLES if x.reply and type(x).per_cell()], ids=lambda x: type(x).__name__)
def test_reply_size_derived_from_the_layout_matches_the_packed_reply(msg: m.Message) -> None:
    # check_request refuses requests whose reply would exceed the host's limit by this size.
    n = next(v for v in vars(msg).values() if isinstance(v, np.ndarray)).size  # cells, or grid elements
    assert type(msg).size(n, msg) == len(msg.pack())


def test_info_limits_are_the_one_limits_type() -> None:
    limits = INFO.safety_limits
    assert (limits.max_abs_voltage, limits.max_gate_voltage, limits.min_pulse_width, limits.max_pulse_width,
            limits.max_compliance, limits.max_read_voltage) == (INFO.v_max, INFO.vg_max, INFO.width_min,
                                                                 INFO.width_max, INFO.compliance_max, INFO.v_read_max)


def test_scheme_payloads_take_the_names_defaults_and_table_of_labctl_core() -> None:
    from dataclasses import asdict

    from labctl.core.schemes import REFERENCE_PULSE_TABLE, IncrementalScheme

    core = {k: v for k, v in asdict(IncrementalScheme()).items() if k not in ("name", "table")}
    assert vars(m.IncrementalStep()) == core
    ref = m.IdenticalPulse.reference()
    assert [tuple(getattr(ref, k)) for k in ("g_low", "g_high", "v_set", "v_reset")] == [
        getattr(REFERENCE_PULSE_TABLE, k) for k in ("g_low", "g_high", "v_set", "v_reset")]
    t = np.array([9e-6, 20e-6, 45e-6, 75e-6, 95e-6])
    for ours, theirs in zip(ref.voltages_for(t), REFERENCE_PULSE_TABLE.amplitudes(t)):
        np.testing.assert_array_equal(ours, theirs)
