"""Benchmark of the probe-station TUI (issue 8): map redraw and input latency during a campaign.

    python scripts/bench_tui.py           # a table
    python scripts/bench_tui.py --json    # one JSON object

map_redraw_{64,512}_s: from a READ_ARRAY result (a (rows, cols) conductance matrix in S, already read)
  to the array map redrawn on the (headless) screen: ArrayMap.show() — scaling, block averaging,
  palette levels — then the compositor's update of the dirty map (what Textual's refresh tick does),
  median over repetitions. The terminal is 160x50, so 512x512 is shown zoomed out (8x8 cells per
  character); 64x64 fits at one character per cell.
input_latency_during_campaign_s: while a campaign (forming + host-loop program-and-verify on a
  32x32 emulated array) runs (in the TUI's campaign child process, as `labctl tui` runs it), a cursor
  key is pressed; the time until the key has been handled and the map redrawn with the cursor moved.
  Median; p95 and max are printed too, and the same figures with no campaign running
  (input_latency_idle_s), which is the floor the machine's load and Textual allow.
Targets: map redraw < 0.1 s, input latency < 0.05 s. The machine is shared: figures are noisy.
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from textual import events

from labctl.backends.emulator import EmulatorBackend
from labctl.tui.app import ProbeStationApp
from labctl.tui.widgets.array_map import ArrayMap

from benchmarking import run_benchmark

SIZE = (160, 50)

CAMPAIGN = """\
[campaign]
name = "bench-tui"

[backend]
rows = 32
cols = 32
seed = 11

[[steps]]
routine = "forming"

[[steps]]
routine = "program"
repeat = 200
params = { levels = [15e-6, 35e-6, 55e-6, 75e-6], tolerance = 0.002, loop = "host" }
"""


async def _wait(pilot, cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark: condition not reached")
        await pilot.pause(0.01)


def _count_draws(amap: ArrayMap) -> list[int]:
    """Count the map's lines rendered from now on: drawn[0] (reset it before each measurement)."""
    drawn = [0]
    original = amap.render_line

    def counting(y: int):  # noqa: ANN202
        drawn[0] += 1
        return original(y)

    amap.render_line = counting  # type: ignore[method-assign]
    return drawn


async def map_redraw(n: int, repeats: int) -> tuple[float, int]:
    """Median seconds from READ_ARRAY data to the redrawn map for an n x n array; lines drawn per redraw."""
    tmp = tempfile.mkdtemp()
    app = ProbeStationApp(lambda: EmulatorBackend(n, n, seed=1), store_path=str(Path(tmp) / "runs.sqlite"))
    lines = 0
    async with app.run_test(size=SIZE) as pilot:
        await _wait(pilot, lambda: app.map_updates >= 1)
        amap = app.query_one(ArrayMap)
        array = app.session.backend.array
        drawn = _count_draws(amap)
        rng = np.random.default_rng(0)
        times = []
        for k in range(repeats):
            g = array.read_all() * (1.0 + 0.01 * rng.standard_normal((n, n)))  # a fresh READ_ARRAY result
            await pilot.pause()
            drawn[0] = 0
            t0 = time.perf_counter()
            amap.show(g)
            while drawn[0] == 0:  # the compositor draws every visible line of the map in one pass
                await asyncio.sleep(0)
            times.append(time.perf_counter() - t0)
            lines = drawn[0]
        return statistics.median(times), lines


async def _press_times(app, amap, presses: int) -> list[float]:
    """Seconds from each cursor key reaching the app to the map redrawn with the cursor moved."""
    drawn = _count_draws(amap)
    times = []
    for k in range(presses):
        key = "right" if k % 2 == 0 else "left"
        before = amap.cursor
        await asyncio.sleep(0.05)  # an operator's key rate, not a flood
        drawn[0] = 0
        t0 = time.perf_counter()
        # What the terminal driver does with a key press (Pilot.press would also wait for the
        # whole process to go idle, which a running campaign never lets it).
        event = events.Key(key, None)
        event.set_sender(app)
        app._driver.send_message(event)
        while amap.cursor == before or drawn[0] == 0:
            await asyncio.sleep(0)
        times.append(time.perf_counter() - t0)
    del amap.render_line  # the class's own method again
    return sorted(times)


def _stats(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "max": times[-1]}


async def input_latency(presses: int) -> dict[str, float]:
    """Key-to-screen latency without a campaign (idle) and while one runs (in its child process)."""
    tmp = Path(tempfile.mkdtemp())
    (tmp / "bench.toml").write_text(CAMPAIGN)
    app = ProbeStationApp(lambda: EmulatorBackend(32, 32, seed=1), store_path=str(tmp / "runs.sqlite"))
    progress: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await _wait(pilot, lambda: app.map_updates >= 1)
        amap = app.query_one(ArrayMap)
        amap.focus()
        idle = _stats(await _press_times(app, amap, presses))
        post = app.campaigns.post

        def tee(e) -> None:  # noqa: ANN001
            if hasattr(e, "overall"):
                progress.append(e.overall)
            post(e)

        app.campaigns.post = tee
        app._campaign("run", str(tmp / "bench.toml"), "last")
        await _wait(pilot, lambda: app.campaigns.active and len(progress) > 5)
        amap.focus()
        busy = _stats(await _press_times(app, amap, presses))
        still_running = app.campaigns.active
        app.campaigns.abort("benchmark done")
        await _wait(pilot, lambda: not app.campaigns.active)
    return {**busy, "idle_median": idle["median"], "idle_p95": idle["p95"],
            "campaign_running": float(still_running), "campaign_progress": progress[-1] if progress else 0.0}


async def main_async(repeats: int, presses: int) -> dict[str, object]:
    m64, lines64 = await map_redraw(64, repeats)
    m512, lines512 = await map_redraw(512, repeats)
    lat = await input_latency(presses)
    return {"map_redraw_64_s": m64, "map_redraw_512_s": m512, "map_lines_drawn_64": lines64,
            "map_lines_drawn_512": lines512, "input_latency_during_campaign_s": lat["median"],
            "input_latency_during_campaign_p95_s": lat["p95"], "input_latency_during_campaign_max_s": lat["max"],
            "input_latency_idle_s": lat["idle_median"], "input_latency_idle_p95_s": lat["idle_p95"],
            "campaign_was_running": bool(lat["campaign_running"])}


def table(result: dict[str, Any]) -> None:
    print(f"{'figure':<40} {'measured':>12} {'target':>10}")
    print(f"{'map redraw 64x64 (median)':<40} {result['map_redraw_64_s'] * 1e3:>9.1f} ms {'< 100 ms':>10}")
    print(f"{'map redraw 512x512 (median)':<40} {result['map_redraw_512_s'] * 1e3:>9.1f} ms {'< 100 ms':>10}")
    print(f"{'input latency during campaign (median)':<40} "
          f"{result['input_latency_during_campaign_s'] * 1e3:>9.1f} ms {'< 50 ms':>10}")
    print(f"{'  p95 / max':<40} {result['input_latency_during_campaign_p95_s'] * 1e3:>6.1f} / "
          f"{result['input_latency_during_campaign_max_s'] * 1e3:.1f} ms")
    print(f"{'input latency, no campaign (median / p95)':<40} {result['input_latency_idle_s'] * 1e3:>9.1f} ms"
          f"  / {result['input_latency_idle_p95_s'] * 1e3:.1f} ms")
    print(f"map lines drawn per redraw: {result['map_lines_drawn_64']} (64x64), {result['map_lines_drawn_512']} (512x512);"
          f" campaign running throughout: {result['campaign_was_running']}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, lambda args: asyncio.run(main_async(args.repeats, args.presses)), table,
                         repeats=(15, "map redraws per size"), presses=(60, "key presses during the campaign"))


if __name__ == "__main__":
    raise SystemExit(main())
