"""Helpers the test files share (fixtures are in conftest.py). Import as `from helpers import ...`: pytest
puts tests/ on the path.

Nothing here asserts what a test is about; these only set things up and wait for them.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- campaign files -------------------------------------------------------------------------------
def campaign_text(name: str, rows: int, cols: int, seed: int, body: str) -> str:
    """A campaign file on a fresh emulated array: [campaign] `name`, [backend] `rows` x `cols` of `seed`,
    then `body` (its [[steps]] and other tables, as the file writes them)."""
    return f'[campaign]\nname = "{name}"\n\n[backend]\nrows = {rows}\ncols = {cols}\nseed = {seed}\n\n{body}'


FORMING_STEP = '[[steps]]\nroutine = "forming"\n'


def stored_run(path: Any, text: str, source: str = "campaign.toml", **runner: Any) -> str:
    """Run campaign `text` into the store at `path` in this process; the run id (the run must complete)."""
    import asyncio

    from labctl.campaigns import Runner, Store

    with Store(path) as store:
        result = asyncio.run(Runner.new(store, text, source, **runner).run())
    assert result.status == "complete", result.errors
    return result.run_id


def host_loop_campaign(name: str, size: int, seed: int, repeat: int, extra: str = "") -> str:
    """Forming, then `repeat` passes of host-loop program-and-verify to four levels at 0.2 % on a `size` x
    `size` array: every verify read is a stored batch and the routine's only safe point is after its one
    chunk, so a run of it is long and can be interrupted in different places. `extra`: more tables."""
    return campaign_text(name, size, size, seed, FORMING_STEP + f"""
[[steps]]
routine = "program"
repeat = {repeat}
params = {{ levels = [15e-6, 35e-6, 55e-6, 75e-6], tolerance = 0.002, loop = "host" }}
""" + extra)


# -- stores of runs killed at random moments ------------------------------------------------------
def stored_run_id(path: Any) -> str | None:
    """The run id in the store file at `path` (None if there is no file, no schema yet or no run)."""
    import sqlite3

    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT run_id FROM runs").fetchone()
    except sqlite3.OperationalError:  # killed before the schema was committed
        row = None
    db.close()
    return row[0] if row else None


def started_count(path: Any) -> int:
    """'start' and 'resume' events so far in the store file at `path` (0 if it is not there yet)."""
    import sqlite3

    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE kind IN ('start', 'resume')").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


#: A campaign whose forming step has a bad unit on line 6 (`v_stop = "9 V"`).
BAD_CAMPAIGN = """\
[campaign]
name = "broken"

[[steps]]
routine = "forming"
params = { v_stop = "9 V" }
"""


# -- routines -------------------------------------------------------------------------------------
def abort_at(checkpoint: int) -> Callable[[], Awaitable[None]]:
    """A RoutineContext.on_checkpoint that raises labctl.routines.Aborted at its `checkpoint`-th call
    (1-based), as an abort requested while the routine runs does."""
    from labctl.routines import Aborted

    calls = 0

    async def on_checkpoint() -> None:
        nonlocal calls
        calls += 1
        if calls == checkpoint:
            raise Aborted

    return on_checkpoint


# -- the TUI --------------------------------------------------------------------------------------
def wait_for(cond: Callable[[], object], timeout: float = 30.0, poll: float = 0.05) -> bool:
    """Poll `cond()` until it holds (True) or `timeout` s pass (False): for other processes and threads."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


async def until(pilot: Any, cond: Callable[[], object], timeout: float = 20.0) -> None:
    """Let the app run until `cond()` holds; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.02)


#: Terminal size of the TUI pilot tests (columns, lines).
SIZE = (150, 48)


async def connected(pilot: Any, app: Any) -> None:
    """Wait until the app's backend session has shown the array map once."""
    await until(pilot, lambda: app.map_updates >= 1)


async def run_form(pilot: Any, app: Any, key: str, values: dict[str, str] | None = None) -> None:
    """Open the action's form with its key, fill fields, submit, wait for the action to finish."""
    from labctl.tui.widgets.forms import ActionForm

    app.last_result = None
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ActionForm))
    form = app.screen
    for name, text in (values or {}).items():
        form.query_one(f"#field-{name}").value = text
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, ActionForm))
    await until(pilot, lambda: app.busy is None and (app.last_result is not None or app.last_error is not None))


# -- the 3706A bench (emulator.instruments, examples/station-2602b.toml, station-2400.toml) -------
#: 3706A matrix rows of the emulated terminals (emulator.instruments.bench.TERMINAL_ROWS_3706A).
ROWS_3706A = {"smua": "1", "smub": "2", "afg1": "3", "smu2400": "4", "gate2400": "5", "ground": "6"}


def route_3706a(row: int, col: int, terminal: str, gate: str, rows: int = 8, cols: int = 4) -> list[str]:
    """3706A crosspoints of cell (row, col) of a rows x cols array: bit line to ``terminal``, word
    line to ``gate``, source line to ground (3730 cards, 16 columns each)."""
    from emulator.instruments import line_column

    def ch(kind: str, index: int, matrix_row: str) -> str:
        slot, column = line_column(kind, index, rows, cols, 16)
        return f"{slot}{matrix_row}{column:02d}"
    return [ch("BL", col, ROWS_3706A[terminal]), ch("WL", row, ROWS_3706A[gate]),
            ch("SL", row, ROWS_3706A["ground"])]


def form_and_reset_cell(array: Any, row: int = 2, col: int = 1) -> None:
    """Form one cell of an emulator.Array (0 -> 3.6 V at VG 1.2 V) and reset it (-> -1.5 V at 3.3 V),
    directly on the array."""
    import numpy as np

    array.sweep(row, col, np.linspace(0, 3.6, 73), vg=1.2)
    array.sweep(row, col, np.linspace(0, -1.5, 31), vg=3.3)


# -- crossbar reference -----------------------------------------------------------------------------
def nodal_solve(g: Any, v: Any, r_row: float, r_col: float) -> Any:
    """Column currents by assembling the full nodal conductance matrix (KCL at every wire node).

    Row i is driven at its column-0 end through one segment; column j is held at 0 V at its last-row
    end through one segment. A zero resistance makes that layer's nodes fixed (rows at v, columns at 0).
    """
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    rows, cols = g.shape
    n = rows * cols
    entries: dict[tuple[int, int], float] = {}
    b = np.zeros(2 * n)

    def add(i: int, j: int, val: float) -> None:
        entries[(i, j)] = entries.get((i, j), 0.0) + val

    def link(a: int, bb: int, cond: float) -> None:
        add(a, a, cond), add(bb, bb, cond), add(a, bb, -cond), add(bb, a, -cond)

    row_node = lambda i, j: i * cols + j  # noqa: E731
    col_node = lambda i, j: n + i * cols + j  # noqa: E731
    for i in range(rows):
        for j in range(cols):
            link(row_node(i, j), col_node(i, j), g[i, j])
            if r_row > 0:
                if j == 0:
                    add(row_node(i, 0), row_node(i, 0), 1 / r_row)
                    b[row_node(i, 0)] += v[i] / r_row
                else:
                    link(row_node(i, j - 1), row_node(i, j), 1 / r_row)
            if r_col > 0:
                if i == rows - 1:
                    add(col_node(i, j), col_node(i, j), 1 / r_col)
                else:
                    link(col_node(i, j), col_node(i + 1, j), 1 / r_col)
    keys = np.array(list(entries))
    a = sp.csr_matrix((list(entries.values()), (keys[:, 0], keys[:, 1])), shape=(2 * n, 2 * n))
    fixed = np.zeros(2 * n, dtype=bool)
    x = np.zeros(2 * n)
    if r_row == 0:
        fixed[:n] = True
        x[:n] = np.repeat(v, cols)
    if r_col == 0:
        fixed[n:] = True
    free = ~fixed
    rhs = b[free] - a[free][:, fixed] @ x[fixed]
    x[free] = spl.spsolve(a[free][:, free].tocsc(), rhs)
    if r_col > 0:
        return x[n + (rows - 1) * cols: n + rows * cols] / r_col
    # columns at ground: the current out of a column is what its cells deliver
    return np.array([sum(g[i, j] * (x[row_node(i, j)]) for i in range(rows)) for j in range(cols)])
