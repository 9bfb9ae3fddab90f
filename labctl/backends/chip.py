"""ChipBackend: an array behind a chip controller, over the chip command protocol (docs/protocol.md).

The controller runs the per-pulse loops itself (SET_TARGET_G), so `program` is native. On an
emulated controller (INFO capability bit 0) the clock is the emulator's virtual clock, moved by
EMU_ADVANCE; on hardware `wait` sleeps and `now` is host monotonic time since opening.

Every argument is checked against the limits the controller reported in INFO before a frame is
sent. The protocol addresses a cell at most once per request and takes one amplitude, gate and
width per PULSE, so calls that list a cell twice, or give per-cell pulse parameters, are split
into several requests; the per-cell order of operations is kept, which is all the emulator's
per-cell random streams depend on.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np

from labctl.backends.base import ArrayBackend, BackendInfo, FloatArray, IntArray, ProgramOutcome, ProgramSettings
from labctl.core.limits import SafetyLimits
from labctl.core.schemes import IdenticalScheme
from labctl.protocols import messages as m
from labctl.protocols.cells import Cells
from labctl.protocols.client import ChipClient
from labctl.protocols.codes import MAX_PAYLOAD
from labctl.protocols.errors import CommandError, ProtocolError
from labctl.protocols.limits import LimitError

log = logging.getLogger(__name__)

#: Reply payload budget per request, B: large cell lists are split to stay below the protocol's
#: maximum payload (16 MiB) with room to spare.
REPLY_BUDGET = MAX_PAYLOAD // 2


class ChipBackend(ArrayBackend):
    """Array access through a chip controller at `address`.

    Args:
        address: "tcp://HOST:PORT", "serial:///dev/ttyUSB0" or a device path ("/dev/pts/5").
        timeout: seconds per attempt before the client retransmits (long commands ask STATUS
            instead and keep waiting while the controller works on them).
        retries: retransmissions before giving up.
        baudrate: serial line rate (ignored by TCP and pseudo-terminals).
    """

    def __init__(self, address: str, *, timeout: float = 1.0, retries: int = 3,
                 baudrate: int = 115200) -> None:
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.baudrate = baudrate
        self.client: ChipClient | None = None
        self._info: BackendInfo | None = None
        self._limits: SafetyLimits | None = None
        self._chip_info: m.InfoReply | None = None
        self._t0 = 0.0

    # ------------------------------------------------------------------ description
    @property
    def info(self) -> BackendInfo:  # type: ignore[override]
        if self._info is None:
            raise RuntimeError(f"chip controller {self.address}: not open (use `async with` or open())")
        return self._info

    @property
    def limits(self) -> SafetyLimits:  # type: ignore[override]
        if self._limits is None:
            raise RuntimeError(f"chip controller {self.address}: not open (use `async with` or open())")
        return self._limits

    @property
    def emulated(self) -> bool:
        """True when the controller is an emulator (virtual clock, EMU_* commands)."""
        return bool(self._chip_info is not None and self._chip_info.emulator)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Connect, say HELLO and read INFO (idempotent). ConnectionError names the address."""
        if self.client is not None:
            return
        try:
            client = await ChipClient.connect(self.address, timeout=self.timeout, retries=self.retries,
                                              baudrate=self.baudrate, client_name="labctl ChipBackend")
        except (ProtocolError, OSError, asyncio.TimeoutError) as exc:
            raise ConnectionError(f"chip controller {self.address}: cannot open a session "
                                  f"({type(exc).__name__}: {exc})") from exc
        self.client = client
        info = client.info
        assert info is not None and client.hello is not None
        self._chip_info = info
        self._limits = info.safety_limits
        self._info = BackendInfo(
            kind="chip", rows=info.rows, cols=info.cols,
            identity={"controller": client.hello.controller, "firmware": info.firmware,
                      "model": info.model, "address": self.address},
            native_program=True, virtual_clock=info.emulator)
        self._t0 = time.monotonic()

    async def close(self) -> None:
        """End the session (BYE) and close the link."""
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    async def outputs_off(self) -> None:
        """Stop whatever the controller runs for us (ABORT; harmless when idle).

        A chip controller drives its DACs only while a command runs, so stopping the command is
        what switching the outputs off means here; RESET is not needed (this backend never
        changes the controller's settings) and would not touch the array either.
        """
        if self.client is None:
            return
        async with self._errors("ABORT"):
            await self.client.abort()

    # ------------------------------------------------------------------ operations
    async def sweep(self, rows: IntArray, cols: IntArray, voltages: FloatArray, vg: float,
                    dwell: float = 1e-3, compliance: float | None = None) -> FloatArray:
        r, c = self.check_cells(rows, cols)
        v = np.asarray(voltages, dtype=np.float64).reshape(-1)
        info = self._require()
        if v.size == 0 or v.size > info.max_sweep_points:
            raise ValueError(f"voltages: expected 1..{info.max_sweep_points} points, got {v.size}")
        self.check_voltage("voltages", v)
        self.check_gate("vg", vg)
        if not (math.isfinite(dwell) and info.dwell_min <= dwell <= info.dwell_max):
            raise ValueError(f"dwell: {dwell!r} s is outside the allowed range [{info.dwell_min:g}, {info.dwell_max:g}] s")
        self.check_compliance(compliance)
        out = np.empty((r.size, v.size))
        per_request = max(1, REPLY_BUDGET // (8 * v.size))
        for sel in _passes(r, c, per_request):
            async with self._errors("SWEEP"):
                out[sel] = await self.client.sweep(Cells.list(r[sel], c[sel]), v, vg=float(vg),  # type: ignore[union-attr]
                                                   dwell=float(dwell))
        return self.clip_to_compliance(out, compliance)

    async def pulse(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                    width: float | FloatArray) -> None:
        r, c = self.check_pulse(rows, cols, v, vg, width)
        n = r.size
        try:
            params = np.stack([np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)) for x in (v, vg, width)], axis=1)
        except ValueError:
            raise ValueError(f"v, vg, width: expected scalars or {n} values (one per cell)") from None
        for sel in _passes(r, c, n):
            # One PULSE per distinct (v, vg, width) among the cells of this pass.
            uniq, group = np.unique(params[sel], axis=0, return_inverse=True)
            for k, (vk, gk, wk) in enumerate(uniq):
                cells = sel[group.reshape(-1) == k]
                async with self._errors("PULSE"):
                    await self.client.pulse(Cells.list(r[cells], c[cells]), float(vk), vg=float(gk),  # type: ignore[union-attr]
                                            width=float(wk))

    async def read(self, rows: IntArray, cols: IntArray, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        r, c = self.check_cells(rows, cols)
        self._check_read(v_read, vg)
        out = np.empty(r.size)
        for sel in _passes(r, c, REPLY_BUDGET // 16):
            async with self._errors("READ"):
                out[sel] = await self.client.read(Cells.list(r[sel], c[sel]), float(v_read), float(vg))  # type: ignore[union-attr]
        return out

    async def read_array(self, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        self._check_read(v_read, vg)
        if self.rows * self.cols * 8 > REPLY_BUDGET:
            return await super().read_array(v_read, vg)
        async with self._errors("READ_ARRAY"):
            return await self.client.read_array(None, float(v_read), float(vg))  # type: ignore[union-attr]

    async def wait(self, seconds: float) -> None:
        self.check_seconds(seconds)
        self._require()
        if self.emulated:
            async with self._errors("EMU_ADVANCE"):
                await self.client.emu_advance(float(seconds))  # type: ignore[union-attr]
        else:
            await asyncio.sleep(seconds)

    async def now(self) -> float:
        self._require()
        if self.emulated:
            # Advancing by 0 s changes nothing (no cell relaxes, no random draw) and returns the clock.
            async with self._errors("EMU_ADVANCE"):
                return await self.client.emu_advance(0.0)  # type: ignore[union-attr]
        return time.monotonic() - self._t0

    async def program(self, rows: IntArray, cols: IntArray, targets: FloatArray,
                      settings: ProgramSettings) -> ProgramOutcome:
        """SET_TARGET_G on the controller; same loop as the in-process emulator's."""
        r, c = self.check_cells(rows, cols)
        t = np.asarray(targets, dtype=np.float64)
        t = np.full(r.size, float(t)) if t.ndim == 0 else t.reshape(-1)
        if t.size != r.size:
            raise ValueError(f"targets: expected {r.size} values (one per cell), got {t.size}")
        if t.size and not (np.all(np.isfinite(t)) and t.min() > 0):
            raise ValueError("targets: conductances must be finite and > 0 S")
        s = settings
        # The client checks tolerance, read bias, gates, width and the scheme's amplitudes against the
        # controller's INFO limits before anything is sent (labctl.protocols.limits); on the wire 0
        # iterations means "the controller's default", which a caller of this backend never means.
        if not 1 <= s.max_iterations <= 1_000_000:
            raise ValueError(f"max_iterations: {s.max_iterations!r} is outside [1, 1000000]")
        g = np.empty(r.size)
        iterations = np.empty(r.size, dtype=np.int32)
        converged = np.empty(r.size, dtype=bool)
        for sel, scheme in self._program_requests(r, c, t, s):
            async with self._errors("SET_TARGET_G"):
                reply = await self.client.set_target_g(  # type: ignore[union-attr]
                    Cells.list(r[sel], c[sel]), t[sel], tolerance=s.tolerance, scheme=scheme,
                    max_iterations=s.max_iterations, v_read=s.v_read, vg_read=s.vg_read, width=s.width,
                    vg_set=s.vg_set, vg_reset=s.vg_reset, timeout=max(self.timeout, 5.0))
            g[sel], iterations[sel], converged[sel] = reply.g, reply.iterations, reply.converged
        return ProgramOutcome(g=g, iterations=iterations, converged=converged)

    # ------------------------------------------------------------------ helpers
    def _require(self) -> m.InfoReply:
        if self.client is None or self._chip_info is None:
            raise RuntimeError(f"chip controller {self.address}: not open (use `async with` or open())")
        return self._chip_info

    def _check_read(self, v_read: float, vg: float) -> None:
        self._require()
        lim = self.limits.max_read_voltage or self.limits.max_abs_voltage  # INFO's v_read_max
        if not math.isfinite(v_read) or v_read == 0.0 or abs(v_read) > lim:
            raise ValueError(f"v_read: {v_read!r} V must be non-zero and within |V| <= {lim:g} V")
        self.check_gate("vg", vg)

    def _program_requests(self, r: IntArray, c: IntArray, t: FloatArray,
                          s: ProgramSettings) -> Iterator[tuple[IntArray, m.SchemeParams]]:
        """(cells, scheme block) per SET_TARGET_G request for these settings."""
        scheme = s.scheme
        if isinstance(scheme, IdenticalScheme):
            table = scheme.table
            k = len(table.v_set)
            block = m.IdenticalPulse(
                np.asarray(table.g_low, float), np.asarray(table.g_high, float),
                np.full(k, scheme.v_set) if scheme.v_set is not None else np.asarray(table.v_set, float),
                np.full(k, scheme.v_reset) if scheme.v_reset is not None else np.asarray(table.v_reset, float))
            for sel in _passes(r, c, REPLY_BUDGET // 13):
                yield sel, block
            return
        # Incremental: one start amplitude per request, so cells whose start comes from the
        # per-range table go in one request per distinct (start set, start reset) pair.
        start_set, start_reset = scheme.start_amplitudes(t)
        for sel in _passes(r, c, REPLY_BUDGET // 13):
            pairs, group = np.unique(np.stack([start_set[sel], start_reset[sel]], axis=1), axis=0,
                                     return_inverse=True)
            for k, (vs, vr) in enumerate(pairs):
                # The controller's 16-bit counters: larger bounds are no bound in practice.
                yield sel[group.reshape(-1) == k], m.IncrementalStep(
                    float(vs), scheme.v_step_set, scheme.v_stop_set, float(vr), scheme.v_step_reset,
                    scheme.v_stop_reset, max(0, min(scheme.max_per_polarity, 0xFFFF)),
                    max(0, min(scheme.max_flips, 0xFFFF)))

    @contextlib.asynccontextmanager
    async def _errors(self, command: str) -> AsyncIterator[None]:
        """Link failures become ConnectionError naming the controller; refusals keep their type."""
        if self.client is None:
            raise RuntimeError(f"chip controller {self.address}: not open (use `async with` or open())")
        try:
            yield
        except (LimitError, CommandError):
            raise
        except (ProtocolError, OSError) as exc:
            raise ConnectionError(f"chip controller {self.address}: {command} failed "
                                  f"({type(exc).__name__}: {exc})") from exc


def _passes(r: IntArray, c: IntArray, max_cells: int) -> Iterator[IntArray]:
    """Positions into (r, c), split so that no cell appears twice in one part and no part has more
    than `max_cells` cells; the k-th listing of a cell is always in a later part than its
    (k-1)-th, so per-cell order is kept."""
    n = r.size
    if n == 0:
        return
    key = r * (int(c.max()) + 1) + c
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    # occurrence[i]: how many times the cell at position i was listed before it.
    occurrence = np.empty(n, dtype=np.int64)
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    occurrence[order] = np.arange(n) - run_start
    for k in range(int(occurrence.max()) + 1):
        positions = np.flatnonzero(occurrence == k)
        for start in range(0, positions.size, max(1, max_cells)):
            yield positions[start:start + max_cells]
