"""One real terminal session: tmux runs `labctl tui` (detached, fixed size), keys go in with send-keys,
the screen comes back with capture-pane. It must show the array map, a programmed cell's new value
and end with a clean exit (status 0, terminal restored)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.campaigns.store import Store

pytestmark = pytest.mark.timeout(90)

SESSION = "labctl-tui-test"


def tmux(*args: str) -> str:
    if shutil.which("tmux") is None:  # a failure, not a skip: scripts/install.sh installs it
        pytest.fail("tmux is not installed: run scripts/install.sh (apt-get install tmux)")
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def screen(colours: bool = False) -> str:
    return tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", SESSION)


def wait_for(pattern: str, timeout: float = 30.0) -> str:
    """The screen once `pattern` is on it (then a short settle: focus moves after a screen appears)."""
    deadline = time.monotonic() + timeout
    while True:
        text = screen()
        if re.search(pattern, text):
            time.sleep(0.3)
            return text
        assert time.monotonic() < deadline, f"{pattern!r} never appeared; screen:\n{text}"
        time.sleep(0.1)


def test_tmux_session_programs_a_cell_and_exits_cleanly(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    done = tmp_path / "exit-status"
    labctl = [sys.executable, "-m", "labctl.cli"]
    # Size from the pty itself, not from COLUMNS/LINES a parent may have exported.
    command = (f"cd {tmp_path} && env -u COLUMNS -u LINES {' '.join(labctl)} tui --emulator 16x24 --seed 7 --store {store}; "
               f"echo $? > {done}; sleep 60")
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    tmux("new-session", "-d", "-s", SESSION, "-x", "150", "-y", "45", command)
    try:
        text = wait_for(r"array read: 384 cells")
        # The map: the ruler of column indices, row labels, the legend, the cursor glyph, coloured cells.
        assert re.search(r"│\s+0\s+\d+\s+\d+", text) and "(log)" in text and "◆" in text
        coloured = screen(colours=True)
        assert len(set(re.findall(r"\x1b\[[0-9;]*48;[25];[0-9;]+m", coloured))) >= 3  # several cell colours

        # Move to cell (2, 3), form it, then program it to 60 µS with the keyboard.
        tmux("send-keys", "-t", SESSION, "Down", "Down", "Right", "Right", "Right")
        wait_for(r"Cell \(2, 3\)")
        tmux("send-keys", "-t", SESSION, "f")
        wait_for(r"Form — 1 cell")
        tmux("send-keys", "-t", SESSION, "Enter")
        wait_for(r"Form done")
        tmux("send-keys", "-t", SESSION, "p")
        wait_for(r"Program to target G — 1 cell")
        tmux("send-keys", "-t", SESSION, "C-u")  # clear the default target
        time.sleep(0.3)
        tmux("send-keys", "-t", SESSION, "-l", "60 uS")
        wait_for(r"60 uS")
        tmux("send-keys", "-t", SESSION, "Enter")
        wait_for(r"Program to target G done")
        text = wait_for(r"Cell \(2, 3\)\s+G = [\d.]+ µS")  # the detail follows the map's update
        m = re.search(r"Cell \(2, 3\)\s+G = ([\d.]+) µS", text)
        assert m is not None, text
        assert abs(float(m.group(1)) - 60.0) <= 0.02 * 60.0 + 0.05  # within the 2 % acceptance range
        assert re.search(r"cell \(2, 3\): [\d.]+ µS", text)  # the map's legend line shows it too

        tmux("send-keys", "-t", SESSION, "q")
        deadline = time.monotonic() + 15
        while not done.exists() or not done.read_text().strip():
            assert time.monotonic() < deadline, f"no clean exit; screen:\n{screen()}"
            time.sleep(0.1)
        assert done.read_text().strip() == "0"
        assert "EMERGENCY STOP" not in screen()  # the alternate screen is gone: the terminal is restored
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    with Store(store) as s:
        runs = s.runs()
        assert [r.name for r in runs] == ["tui: form", "tui: program"]
        assert all(r.status == "complete" for r in runs)
