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
