"""PUF file safety and CLI errors (issue 20, items 6, 7 and 11): nothing is overwritten without
--force, secrets are 0600 and never written through a symlink, campaign helper files stay inside the
campaign directory, and `labctl puf ...` gives one-line errors with exit status 2 (bad input) or 1
(the operation failed), never a traceback."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from labctl.puf.helper import OutputFileError, write_new_file

from helpers import campaign_text, free_port

ENROLL = ("enroll", "--backend", "emulator:16x16?seed=21", "--prepare", "form_set", "--secret-bits", "64",
          "--ber-floor", "0.005")


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "labctl.cli", "puf", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def no_traceback(r):
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return r


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_write_new_file_is_atomic_exclusive_and_owner_only(tmp_path):
    old = os.umask(0)
    try:
        target = tmp_path / "key.hex"
        write_new_file(target, b"secret\n", mode=0o600)
        assert target.read_bytes() == b"secret\n" and mode(target) == 0o600
        with pytest.raises(OutputFileError, match="exists; not overwritten without --force"):
            write_new_file(target, b"other\n", mode=0o600)
        assert target.read_bytes() == b"secret\n"
        target.chmod(0o644)  # an existing world-readable file: --force gives a new 0600 file
        write_new_file(target, b"new\n", mode=0o600, force=True)
        assert target.read_bytes() == b"new\n" and mode(target) == 0o600
        elsewhere = tmp_path / "elsewhere"
        elsewhere.write_text("unrelated\n")
        link = tmp_path / "link.hex"
        link.symlink_to(elsewhere)
        for force in (False, True):
            with pytest.raises(OutputFileError, match="symbolic link"):
                write_new_file(link, b"key\n", mode=0o600, force=force)
        assert elsewhere.read_text() == "unrelated\n" and link.is_symlink()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "key.hex", "link.hex"]  # no temp left
    finally:
        os.umask(old)


def test_cli_refuses_existing_outputs_before_measuring_and_keeps_keys_0600(tmp_path):
    (tmp_path / "h.json").write_text("old helper data\n")
    r = no_traceback(cli(*ENROLL, "--state", "chip.bin", "--helper", "h.json", cwd=tmp_path))
    assert r.returncode == 2 and "h.json: exists; not overwritten without --force" in r.stderr
    assert (tmp_path / "h.json").read_text() == "old helper data\n"
    assert not (tmp_path / "chip.bin").exists()  # refused before the backend was opened
    key = tmp_path / "k.hex"
    key.write_text("old key\n")
    key.chmod(0o644)
    r = no_traceback(cli(*ENROLL, "--helper", "new.json", "--key-out", "k.hex", cwd=tmp_path))
    assert r.returncode == 2 and "k.hex: exists" in r.stderr and not (tmp_path / "new.json").exists()
    r = cli(*ENROLL, "--state", "chip.bin", "--helper", "h.json", "--key-out", "k.hex", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert mode(key) == 0o600 and len(key.read_text().strip()) == 64
    json.loads((tmp_path / "h.json").read_text())
    # reconstruct: through a symlink is refused even with --force; the link's target is untouched
    (tmp_path / "target").write_text("unrelated\n")
    (tmp_path / "k2.hex").symlink_to(tmp_path / "target")
    base = ("reconstruct", "--backend", "emulator:16x16?seed=21", "--state", "chip.bin", "--helper", "h.json")
    r = no_traceback(cli(*base, "--key-out", "k2.hex", "--force", cwd=tmp_path))
    assert r.returncode == 2 and "symbolic link" in r.stderr and (tmp_path / "target").read_text() == "unrelated\n"
    r = cli(*base, "--key-out", "k.hex", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "authenticated" in r.stdout and "corrected" not in r.stdout
    assert mode(key) == 0o600


def test_cli_errors_are_one_line_with_exit_status(tmp_path):
    r = no_traceback(cli(cwd=tmp_path))
    assert r.returncode == 2 and "PUF_COMMAND" in r.stderr
    r = no_traceback(cli("enroll", "--reads", "0", "--helper", "h.json", cwd=tmp_path))
    assert r.returncode == 2 and "--reads: 0 must be >= 1" in r.stderr
    r = no_traceback(cli("reconstruct", "--reads", "0", "--helper", "h.json", cwd=tmp_path))
    assert r.returncode == 2 and "--reads" in r.stderr
    r = no_traceback(cli("reconstruct", "--helper", "missing.json", cwd=tmp_path))
    assert r.returncode == 2 and "missing.json: cannot read helper data" in r.stderr
    (tmp_path / "dir.json").mkdir()
    r = no_traceback(cli("reconstruct", "--helper", "dir.json", cwd=tmp_path))
    assert r.returncode == 2 and "dir.json: cannot read helper data" in r.stderr
    (tmp_path / "corrupt.json").write_bytes(b'{"format": "labctl-puf-helper", "version": 2, "cre\xff')
    r = no_traceback(cli("reconstruct", "--helper", "corrupt.json", cwd=tmp_path))
    assert r.returncode == 2 and "corrupt.json" in r.stderr
    (tmp_path / "v1.json").write_text(json.dumps({"format": "labctl-puf-helper", "version": 1}))
    r = no_traceback(cli("reconstruct", "--helper", "v1.json", cwd=tmp_path))
    assert r.returncode == 2 and "version 1 is not authenticated" in r.stderr and "re-enroll" in r.stderr
    r = no_traceback(cli("enroll", "--helper", "h.json", "--backend", "nonsense:1", cwd=tmp_path))
    assert r.returncode == 2 and "not a backend address" in r.stderr
    r = no_traceback(cli("enroll", "--helper", "h.json", "--backend", f"tcp://127.0.0.1:{free_port()}",
                         cwd=tmp_path))
    assert r.returncode == 1 and "cannot open a session" in r.stderr and not (tmp_path / "h.json").exists()


def campaign(helper_file: str, routine: str = "puf_enroll") -> str:
    params = '{ prepare = "form_set", secret_bits = 64, ber_floor = 0.005, helper_file = "%s" }' % helper_file
    if routine == "puf_evaluate":
        params = '{ helper_file = "%s" }' % helper_file
    return campaign_text("puf", 16, 16, 31, f'[[steps]]\nroutine = "{routine}"\nparams = {params}\n')


@pytest.mark.parametrize("helper_file", ["../../../victim.json", "/tmp/victim.json", "out/../../victim.json"])
def test_campaign_helper_file_may_not_leave_the_campaign_directory(tmp_path, helper_file):
    from labctl.campaigns.model import CampaignError, load_campaign

    with pytest.raises(CampaignError, match="helper_file.*leaves the campaign file's directory"):
        load_campaign(campaign(helper_file), str(tmp_path / "c.toml"))
    (tmp_path / "c.toml").write_text(campaign(helper_file))
    r = subprocess.run([sys.executable, "-m", "labctl.cli", "run", "--check", "c.toml"], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "leaves the campaign file's directory" in r.stderr and "Traceback" not in r.stderr


async def test_campaign_step_resolves_against_the_campaign_file_and_never_overwrites(tmp_path, monkeypatch):
    from labctl.campaigns import Runner, Store

    camp_dir = tmp_path / "campaigns"
    camp_dir.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths follow the campaign file, not the working directory
    with Store(tmp_path / "runs.sqlite") as store:
        result = await Runner.new(store, campaign("out/chip.json"), str(camp_dir / "c.toml")).run()
        assert result.status == "complete", result.errors
        assert (camp_dir / "out" / "chip.json").is_file() and not (elsewhere / "out").exists()
        first = (camp_dir / "out" / "chip.json").read_text()
        # the same campaign again: the existing helper data is kept, refused before any measurement
        again = await Runner.new(store, campaign("out/chip.json"), str(camp_dir / "c.toml")).run()
        assert again.status == "failed" and again.measurements == 0
        assert any("chip.json: exists" in e for e in again.errors), again.errors
        assert (camp_dir / "out" / "chip.json").read_text() == first
        # a symlink inside the directory that points out of it is refused as well
        victim = tmp_path / "victim.json"
        victim.write_text("unrelated\n")
        (camp_dir / "escape").symlink_to(tmp_path)
        out = await Runner.new(store, campaign("escape/victim2.json"), str(camp_dir / "c.toml")).run()
        assert out.status == "failed" and any("leads out of the campaign directory" in e for e in out.errors)
        assert not (tmp_path / "victim2.json").exists()
        ev = await Runner.new(store, campaign("out/chip.json", "puf_evaluate"), str(camp_dir / "c.toml")).run()
        assert ev.status == "complete", ev.errors
        summary = store.units(ev.run_id)[0].summary
        assert summary == {"reconstructed": summary["reconstructed"], "message": summary["message"]}


def test_run_check_refuses_an_existing_helper_file_before_anything_runs(tmp_path):
    (tmp_path / "c.toml").write_text(campaign("out/chip.json"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "chip.json").write_text("earlier helper data\n")
    for args in (["run", "--check", "c.toml"], ["run", "c.toml", "--store", "s.sqlite", "--no-report"]):
        r = subprocess.run([sys.executable, "-m", "labctl.cli", *args], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
        assert r.returncode == 2 and "chip.json: exists; not overwritten" in r.stderr and "step 0" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "s.sqlite").exists()  # refused before a run was created
    assert (tmp_path / "out" / "chip.json").read_text() == "earlier helper data\n"


def test_evaluate_keeps_an_earlier_report_without_force(tmp_path):
    args = ("evaluate", "--arrays", "2", "--rows", "32", "--cols", "32", "--no-entropy", "--out", "o")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "puf_report.json").write_text("earlier report\n")
    r = no_traceback(cli(*args, cwd=tmp_path))
    assert r.returncode == 2 and "puf_report.json: exists" in r.stderr
    assert (tmp_path / "o" / "puf_report.json").read_text() == "earlier report\n"
    r = cli(*args, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o" / "puf_report.json").read_text())["devices_enrolled"] == 2
    assert (tmp_path / "o" / "puf_bit_statistics.png").read_bytes()[:4] == b"\x89PNG"
