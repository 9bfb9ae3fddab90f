"""What a careless user of `labctl` sees (issue 20, items 3 and 11, store and CLI parts): the store is never
written over by an export, never created by a read-only command, unreadable stores and full disks give a
clear error naming the file, a second resumer is refused, and every error is one line and an exit status
(0 ok, 1 failed run or operation, 2 bad input), never a traceback. Real `labctl` subprocesses, a real store.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import campaign_text, free_port
from labctl.campaigns import Store

SMALL = campaign_text("small", 4, 4, 1, '[[steps]]\nroutine = "forming"\n')


def labctl(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`labctl ARGS` in a subprocess on this tree; asserts no traceback reached the user."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("LABCTL_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one complete run of SMALL."""
    d = tmp_path_factory.mktemp("stored")
    (d / "small.toml").write_text(SMALL)
    proc = labctl("run", "small.toml", "--store", "runs.sqlite", "--no-report", cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d / "runs.sqlite"


def _copy_store(stored: Path, tmp_path: Path) -> Path:
    with Store(stored, read_only=True):  # (checks it is readable)
        pass
    store = tmp_path / "runs.sqlite"
    shutil.copy(stored, store)
    for suffix in ("-wal", "-shm"):
        if Path(str(stored) + suffix).exists():
            shutil.copy(str(stored) + suffix, str(store) + suffix)
    return store


def _runs(store: Path) -> int:
    with Store(store, read_only=True) as s:
        return len(s.runs())


# -- item 3: exports -----------------------------------------------------------------------------
def test_export_never_writes_over_the_store_nor_an_existing_file(stored: Path, tmp_path: Path) -> None:
    store = _copy_store(stored, tmp_path)
    os.link(store, tmp_path / "hard-link.sqlite")
    for out in (store, Path(str(store) + "-wal"), tmp_path / "hard-link.sqlite",
                tmp_path / "sub" / ".." / "runs.sqlite"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        proc = labctl("runs", "export", "last", "--store", str(store), "--out", str(out))
        assert proc.returncode == 2 and "store" in proc.stderr, (out, proc.stderr)
    assert _runs(store) == 1  # every run still there
    # An existing output is refused without --force and replaced with it.
    old = tmp_path / "old.csv"
    old.write_text("precious\n")
    proc = labctl("runs", "export", "last", "--store", str(store), "--out", str(old))
    assert proc.returncode == 2 and "--force" in proc.stderr and old.read_text() == "precious\n"
    proc = labctl("runs", "export", "last", "--store", str(store), "--out", str(old), "--force")
    assert proc.returncode == 0 and old.read_text().startswith("run_id,")


def test_an_export_that_fails_leaves_no_half_file(tmp_path: Path) -> None:
    from labctl.campaigns.export import atomic_output

    target = tmp_path / "out.csv"
    target.write_text("before\n")
    with pytest.raises(RuntimeError), atomic_output(target) as f:
        f.write("half a file")
        raise RuntimeError("the store failed mid-export")
    assert target.read_text() == "before\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


# -- item 11: the store --------------------------------------------------------------------------
def test_unreadable_stores_give_a_clear_error_naming_the_file(stored: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not an SQLite file\n" * 100)
    truncated = tmp_path / "truncated.sqlite"
    data = _checkpointed(stored, tmp_path)
    truncated.write_bytes(data[: len(data) // 3])
    directory = tmp_path / "a-directory.sqlite"
    directory.mkdir()
    for path in (garbage, truncated, directory):
        for args in (["runs", "list"], ["runs", "show", "last"], ["report", "last", "--out", str(tmp_path / "r")]):
            proc = labctl(*args, "--store", str(path))
            assert proc.returncode == 2, (path, args, proc.stderr)
            assert str(path) in proc.stderr and proc.stderr.startswith("labctl: error:"), proc.stderr
    # A store in a directory that does not exist: named, no traceback.
    (tmp_path / "c.toml").write_text(SMALL)
    proc = labctl("run", str(tmp_path / "c.toml"), "--store", str(tmp_path / "no" / "such" / "runs.sqlite"))
    assert proc.returncode == 2 and "runs.sqlite" in proc.stderr


def _checkpointed(stored: Path, tmp_path: Path) -> bytes:
    """The bytes of a copy of the store with its WAL folded in (closing the last connection does that)."""
    (tmp_path / "ck").mkdir()
    copy = _copy_store(stored, tmp_path / "ck")
    Store(copy).close()
    assert not Path(str(copy) + "-wal").exists()
    return copy.read_bytes()


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    for args in (["runs", "list"], ["runs", "show", "last"], ["runs", "export", "last"], ["report", "last"]):
        proc = labctl(*args, "--store", "typo.sqlite", cwd=tmp_path)
        assert proc.returncode == 2 and "typo.sqlite" in proc.stderr, (args, proc.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path):  # noqa: ANN201
    """A 1 MiB tmpfs (we run as root in CI), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_fails_the_run_and_says_so(small_disk: Path, tmp_path: Path) -> None:
    (tmp_path / "big.toml").write_text(campaign_text("fills the disk", 32, 32, 1, '[[steps]]\nroutine = "forming"\n'))
    store = small_disk / "runs.sqlite"
    proc = labctl("run", str(tmp_path / "big.toml"), "--store", str(store), "--no-report")
    assert proc.returncode == 1
    assert "disk is full" in proc.stdout and str(store) in proc.stdout
    with Store(store, read_only=True) as s:
        (rec,) = s.runs()
        assert rec.status == "failed"
        assert "disk is full" in rec.errors[0] and str(store) in rec.errors[0]
        assert not any("rollback" in e for e in rec.errors)


def test_a_complete_run_whose_report_cannot_be_written_stays_complete_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(SMALL)
    (tmp_path / "a-file").write_text("")
    proc = labctl("run", "c.toml", "--store", "runs.sqlite", "--report-dir", "a-file/report", cwd=tmp_path)
    assert proc.returncode == 2
    assert "report" in proc.stderr and "a-file" in proc.stderr
    with Store(tmp_path / "runs.sqlite", read_only=True) as s:
        assert s.latest_run().status == "complete"


def test_of_two_resumers_started_at_once_one_is_refused(tmp_path: Path) -> None:
    text = campaign_text("long", 16, 16, 2, '[[steps]]\nroutine = "forming"\nchunk_cells = 16\n\n'
                         '[[steps]]\nroutine = "program"\nrepeat = 3\n'
                         'params = { levels = [15e-6, 35e-6, 55e-6, 75e-6], tolerance = 0.002, loop = "host" }\n')
    (tmp_path / "c.toml").write_text(text)
    store = tmp_path / "runs.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # An interrupted run: SIGKILL once it has stored something.
    first = subprocess.Popen([sys.executable, "-m", "labctl.campaigns.cli", "run", "c.toml", "--store",
                              str(store), "--no-report"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _has_units_done(store):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    first.kill()
    first.wait()
    resumers = [subprocess.Popen([sys.executable, "-m", "labctl.cli", "run", "--resume", "last", "--store",
                                  str(store), "--no-report"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in resumers]
    codes = sorted(p.returncode for p in resumers)
    assert codes == [0, 2], outs
    refused = next(err for p, (_, err) in zip(resumers, outs) if p.returncode == 2)
    assert "resume:" in refused and "Traceback" not in refused
    with Store(store, read_only=True) as s:
        rec = s.latest_run()
        assert rec.status == "complete" and rec.resumes == 1
        assert not any("IntegrityError" in e for e in rec.errors)


def _has_units_done(store: Path) -> bool:
    if not store.exists():
        return False
    try:
        with Store(store, read_only=True) as s:
            run = s.latest_run()
            return run is not None and s.units_done(run.run_id) >= 2
    except Exception:  # noqa: BLE001 -- the schema is not committed yet
        return False


# -- item 11: the command line -------------------------------------------------------------------
def test_cli_errors_are_one_line_and_an_exit_status(stored: Path, tmp_path: Path) -> None:
    proc = labctl()
    assert proc.returncode == 2 and "usage: labctl" in proc.stderr
    proc = labctl("eval")
    assert proc.returncode == 2 and "usage: labctl eval" in proc.stderr
    proc = labctl("emulate", "--port", "99999")
    assert proc.returncode == 2 and "99999" in proc.stderr
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = labctl("puf", "enroll", "--backend", address, "--helper", str(tmp_path / "h.json"))
    assert proc.returncode in (1, 2) and "127.0.0.1" in proc.stderr and proc.stderr.count("\n") <= 3


def test_a_closed_pipe_is_not_a_traceback(stored: Path, tmp_path: Path) -> None:
    """`labctl runs show RUN | head -1` on a run with a long log."""
    store = _copy_store(stored, tmp_path)
    with Store(store) as s:
        run_id = s.latest_run().run_id
        for i in range(3000):
            s.event(run_id, "telemetry", f"message {i} " + "x" * 40)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "runs", "show", "last", "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err
