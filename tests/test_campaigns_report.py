"""Run reports: the main job's figures (axes, units, what each shows), the self-contained page rendered
in a real headless Chromium, and reports of runs that failed, stopped early or cannot be written."""
from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from matplotlib.ticker import EngFormatter

from labctl.campaigns import Runner, Store
from labctl.campaigns.report import build_steps, load_step, step_figures, write_report
from labctl.routines import figures
from labctl.routines.figures import Figure, Note, Table

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = ROOT / "examples" / "weight-transfer.toml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """The main job (examples/weight-transfer.toml, 32 x 32) run into a store, and its report."""
    d = tmp_path_factory.mktemp("main")
    with Store(d / "runs.sqlite") as store:
        result = asyncio.run(Runner.new(store, MAIN_JOB.read_text(), str(MAIN_JOB)).run())
        assert result.status == "complete", result.errors
        page = write_report(store, result.run_id, d / "report")
    return d / "runs.sqlite", result.run_id, page


def _items(store_path: Path, run_id: str) -> dict[str, list]:
    """Drawn (unsaved) items per step name."""
    with Store(store_path, read_only=True) as store:
        rec = store.run(run_id)
        units = store.units(run_id)
        return {load_step(store, rec, i, units).name: step_figures(load_step(store, rec, i, units))
                for i in range(len(rec.campaign["steps"]))}


def _fig(items: list, name: str):
    return next(i for i in items if isinstance(i, Figure) and i.name == name)


def _visible(fig):
    return [ax for ax in fig.figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_main_job_figures_have_si_axes_with_prefixes_and_one_set_per_acceptance_range(main_job) -> None:
    path, run_id, _ = main_job
    items = _items(path, run_id)
    form, transfer, noise = items["form"], items["transfer"], items["read-noise"]
    iv = _visible(_fig(form, "iv"))[0]
    assert (iv.get_xlabel(), iv.get_ylabel(), iv.get_yscale()) == ("V (V)", "|I| (A)", "log")
    assert isinstance(iv.yaxis.get_major_formatter(), EngFormatter)
    assert "µA" in iv.yaxis.get_major_formatter()(3e-6) and len(iv.get_lines()) == 12
    one, reram = _visible(_fig(form, "v_form"))
    assert one.get_xlabel() == "V_form, 1T1R (V)" and reram.get_xlabel() == "V_form, ReRAM (R_DS-corrected) (V)"
    caption = _fig(form, "v_form").caption
    assert re.search(r"V_form, 1T1R: µ = 3\.\d+ V, σ = \d+(\.\d+)? mV", caption), caption
    assert _visible(_fig(form, "i_form"))[0].get_xlabel() == "I_form (µA)"
    yield_map = _fig(form, "yield_map")
    assert "1024 of 1024 cells formed" in yield_map.caption
    # Programming: the two acceptance ranges apart, 35 level CDFs each, σ_prog with its fit printed.
    cdf = _visible(_fig(transfer, "cdf"))
    assert [ax.get_title() for ax in cdf] == ["2 % acceptance (tolerance = 0.02)", "0.2 % acceptance (tolerance = 0.002)"]
    assert all(ax.get_xlabel() == "programmed G (µS)" and len(ax.get_lines()) == 35 for ax in cdf)
    sigma = _visible(_fig(transfer, "sigma_prog"))[0]
    assert (sigma.get_xlabel(), sigma.get_ylabel()) == ("G target (µS)", "σ_prog (µS)")
    assert sigma.xaxis.get_major_formatter()(50e-6, 0) == "50"
    fits = re.findall(r"σ_prog = ([0-9.e-]+)·G_target \+ (-?[0-9.]+ [pnµ]?S) \(r = ([0-9.]+)", _fig(transfer, "sigma_prog").caption)
    assert len(fits) == 2 and float(fits[1][0]) < float(fits[0][0]) and all(float(r) > 0.9 for *_, r in fits)
    pulses = _visible(_fig(transfer, "pulses"))
    assert all(ax.get_xlabel() == "G target (µS)" and ax.get_ylabel() == "pulses per cell" for ax in pulses)
    assert "all 1024 cells" in _fig(transfer, "pulses").caption
    with Store(path, read_only=True) as store:
        bad = [u.summary["not_converged"] for u in store.units(run_id) if u.step_name == "transfer"]
    tables = [i for i in transfer if isinstance(i, Table)]
    assert [len(t.rows) for t in tables] == [n for n in bad if n] and all(t.columns[0] == "row" for t in tables)
    rn = _visible(_fig(noise, "read_noise"))
    assert (rn[0].get_xlabel(), rn[0].get_ylabel()) == ("mean G (µS)", "σ of the reads (nS)")
    assert "50 reads per cell" in _fig(noise, "read_noise").caption


def test_scatter_plots_subsample_above_the_documented_count() -> None:
    from labctl.routines.figures.base import MAX_SCATTER, shown, subsample
    from labctl.routines.figures.program import pulses_vs_target

    n = 3 * MAX_SCATTER
    pick = subsample(n)
    assert pick.size == MAX_SCATTER and np.array_equal(pick, subsample(n)) and np.all(np.diff(pick) > 0)
    assert subsample(10).tolist() == list(range(10))
    rng = np.random.default_rng(5)
    fig, axes = figures.base.subplots(1)
    text = pulses_vs_target(axes[0], rng.choice([10e-6, 50e-6], n), rng.integers(1, 40, n), np.ones(n, bool))
    assert text.startswith(shown(MAX_SCATTER, n)) and f"above {MAX_SCATTER}" in text
    assert axes[0].collections[0].get_offsets().shape == (MAX_SCATTER, 2)
    figures.base.pyplot().close(fig)


def test_the_page_is_self_contained(main_job) -> None:
    _, run_id, page = main_job
    text = page.read_text(encoding="utf-8")
    srcs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", text)
    assert srcs and all(s.startswith(("data:image/png;base64,", "#")) for s in srcs), srcs
    assert not re.search(r"https?://", text) and "<script" not in text and "<link" not in text and "url(" not in text
    n_png = len(list(page.parent.glob("*.png")))
    assert text.count('<img src="data:image/png;base64,') == n_png >= 9
    for needle in (run_id, "weight-transfer", "W01", "D08", "max_abs_voltage", "3.6 V", "emulator", "stop",
                   "run complete", "[[steps]]", "Step 1: transfer (program)", "converged_fraction"):
        assert needle in text, needle


def test_the_page_renders_in_headless_chromium(main_job, tmp_path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    _, _, page_path = main_job
    n_png = len(list(page_path.parent.glob("*.png")))
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       headless=True, args=CHROMIUM_ARGS,
                                                       viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            console, failed, requests = [], [], []
            page.on("console", lambda m: console.append(m) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(e))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            widths = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            height = page.evaluate("document.documentElement.scrollHeight")
            shot = page.screenshot(full_page=True)
        finally:
            context.close()
    assert console == [] and failed == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert len(widths) == n_png and all(ok and w > 0 for ok, w in widths), widths
    img = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    assert img.shape[1] == 1280 and img.shape[0] == height > 5000
    ink = np.any(img < 200, axis=2).mean()
    assert 0.02 < ink < 0.6, ink  # text and figures, not a blank (or a black) page
    assert np.unique(img.reshape(-1, 3)[::97], axis=0).shape[0] > 100  # colours of the figures


FAILING = """\
[campaign]
name = "fails-in-step-1"
[backend]
rows = 8
cols = 8
[[steps]]
routine = "forming"
name = "form"
[[steps]]
routine = "program"
name = "transfer"
params = { targets = [30e-6, 40e-6, 50e-6] }
[[steps]]
routine = "read_noise"
name = "read-noise"
"""


def test_a_failed_run_gets_a_report_of_what_it_measured_and_why_it_stopped(tmp_path) -> None:
    text = FAILING
    with Store(tmp_path / "r.sqlite") as store:
        result = asyncio.run(Runner.new(store, text, "bad.toml").run())
        assert result.status == "failed"
        page = write_report(store, result.run_id, tmp_path / "rep")
        steps = build_steps(store, store.run(result.run_id))
    html = page.read_text()
    assert "The run did not complete (failed)" in html and "targets: 3 values given for 64 cells" in html
    form, transfer, noise = steps
    assert any(isinstance(i, Figure) and i.name == "v_form" for i in form.items)
    assert [type(i) for i in transfer.items] == [Note] and "stopped in it before its first" in transfer.items[0].text
    assert noise.units_done == 0 and "the run stopped before it" in noise.items[0].text
    assert "0 of 1 unit(s) of work done" in html and "No unit of this step finished" in html
    # A step with measurements but none a figure needs: that figure is left out, with a note.
    from labctl.routines.figures.base import KindData, StepData, StepGroup
    from labctl.routines.figures.program import program_figures

    sweep = KindData(np.zeros(2, np.int64), np.arange(2), np.zeros(2), np.zeros(2, np.int64), {})
    only_sweeps = StepData("transfer", "program", 8, 8, [StepGroup("", {}, None, False, {"reset_sweep": sweep})])
    (note,) = program_figures(only_sweeps)
    assert isinstance(note, Note) and "No programming outcome stored" in note.text


def test_a_figure_function_that_fails_becomes_a_note_and_plugins_bring_their_own(main_job, monkeypatch,
                                                                                   tmp_path) -> None:
    path, run_id, _ = main_job

    def broken(step):
        raise RuntimeError("no such axis")

    def own(step):
        fig, axes = figures.base.subplots(1)
        return [Figure("own", fig, f"{len(step.groups)} groups"), Table("t", ["a"], [["1"]])]

    monkeypatch.setitem(figures._REGISTERED, "forming", broken)
    monkeypatch.setitem(figures._REGISTERED, "read_noise", own)
    with Store(path, read_only=True) as store:
        page = write_report(store, run_id, tmp_path / "rep")
    html = page.read_text()
    assert "The figures of forming could not be drawn: RuntimeError: no such axis" in html
    assert (tmp_path / "rep" / "step-02-read-noise-own.png").is_file() and "1 groups" in html
    assert (tmp_path / "rep" / "step-01-transfer-sigma_prog.png").is_file()

    class Result:
        figures = "labctl.routines.figures.noise:read_noise_figures"

    assert figures.figures_for("a_plugin", Result).__name__ == "read_noise_figures"
    Result.figures = "no_such_lab.figs:draw"
    with pytest.raises(ValueError, match="no_such_lab.figs:draw"):
        figures.figures_for("a_plugin", Result)


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl.campaigns.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_labctl_run_prints_the_report_page_and_report_opens_it(tmp_path) -> None:
    (tmp_path / "c.toml").write_text('[campaign]\nname = "tiny"\n[backend]\nrows = 4\ncols = 4\n'
                                     '[[steps]]\nroutine = "read"\n')
    proc = _cli("run", "c.toml", "--store", "runs.sqlite", "--report-dir", "rep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "report: rep/report.html (1 figure(s) in rep)" in proc.stdout
    assert "Figure 1." in (tmp_path / "rep" / "report.html").read_text()
    store = str(tmp_path / "runs.sqlite")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    opened = tmp_path / "opened.txt"
    browser = bindir / "fake-browser"  # a real program the webbrowser module runs, recording what it opens
    browser.write_text(f"#!{sys.executable}\nimport sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    browser.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = _cli("report", "last", "--store", store, "--out", str(tmp_path / "a"), "--open",
                env={**base, "PATH": str(bindir), "BROWSER": str(browser)})
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "a" / "report.html"
    assert f"report {page}" in proc.stdout and opened.read_text() == page.as_uri()
    proc = _cli("report", "last", "--store", store, "--out", str(tmp_path / "b"), "--open",
                env={**base, "PATH": str(bindir)})  # no browser anywhere
    assert proc.returncode == 1 and "no browser to open" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "b" / "report.html").is_file()
    (tmp_path / "a-file").write_text("")
    proc = _cli("report", "last", "--store", store, "--out", str(tmp_path / "a-file" / "r"))
    assert proc.returncode == 2 and "report: cannot write" in proc.stderr and "a-file" in proc.stderr


EVERY_ROUTINE = """\
[campaign]
name = "every-routine"
[backend]
rows = 16
cols = 16
seed = 4
[selections.q]
kind = "region"
rows = [0, 4]
cols = [0, 4]
[selections.q2]
kind = "region"
rows = [0, 16]
cols = [0, 16]
[[steps]]
routine = "forming"
cells = "q"
[[steps]]
routine = "conditioning"
cells = "q"
[[steps]]
routine = "iv_cycles"
cells = "q"
params = { cycles = 3 }
[[steps]]
routine = "open_loop"
cells = "q"
params = { batch = 40, cycles = 1, pulses = 40 }
[[steps]]
routine = "retention"
cells = "q"
params = { times = [1, 10, 100, 1000] }
[[steps]]
routine = "relaxation"
cells = "q"
params = { t_first = 1, t_last = 1000, points_per_decade = 1, program = { levels = [20e-6, 40e-6, 60e-6, 80e-6] } }
[[steps]]
routine = "endurance"
cells = "q"
params = { max_cycles = 100, check_every = 10 }
[steps.sweep]
pulses_per_switch = [5, 10]
[[steps]]
routine = "puf_enroll"
cells = "q2"
params = { prepare = "form_set", secret_bits = 64, ber_floor = 0.005, helper_file = "helper.json" }
"""


def test_every_routine_draws_its_own_figures_with_units(tmp_path, monkeypatch) -> None:
    plt = figures.base.pyplot()
    monkeypatch.setitem(plt.rcParams, "figure.max_open_warning", 0)  # every figure is inspected, then closed
    with Store(tmp_path / "r.sqlite") as store:
        result = asyncio.run(Runner.new(store, EVERY_ROUTINE, str(tmp_path / "every.toml")).run())
        assert result.status == "complete", result.errors
        steps = build_steps(store, store.run(result.run_id))
    try:
        drawn = {s.routine: {i.name: i for i in s.items if isinstance(i, Figure)} for s in steps}
        notes = [i.text for s in steps for i in s.items if isinstance(i, Note)]
        assert not any("could not be drawn" in n for n in notes), notes
        assert set(drawn["iv_cycles"]) == {"loops", "window"} and set(drawn["conditioning"]) == {"sweeps", "conductance"}
        hrs_lrs = _visible(drawn["iv_cycles"]["window"])[0]
        assert hrs_lrs.get_xlabel() == "R at the read bias (Ω)" and "kΩ" in hrs_lrs.xaxis.get_major_formatter()(2e4)
        assert "V_set median 1." in drawn["iv_cycles"]["loops"].caption
        assert {"traces", "symmetry_point", "metrics"} <= set(drawn["open_loop"])
        assert [ax.get_xlabel() for ax in _visible(drawn["open_loop"]["metrics"])[3:]] == ["N_states", "SP_skew", "NSR"]
        relax = drawn["relaxation"]
        assert {"relaxation", "overlap", "sigma_prog", "cdf"} <= set(relax)
        mean_ax = _visible(relax["relaxation"])[0]
        assert mean_ax.get_xlabel() == "time after programming" and mean_ax.get_ylabel() == "mean G(t) − G_prog (µS)"
        assert [t.get_text() for t in mean_ax.get_xticklabels()][-1] == "10 years"
        assert "extrapolated to 10 years" in relax["relaxation"].caption
        assert "4 levels" in _visible(relax["overlap"])[0].get_title()
        assert "10 years" in drawn["retention"]["retention"].caption
        (endurance,) = [s for s in steps if s.routine == "endurance"]
        windows = [i for i in endurance.items if isinstance(i, Figure)]
        assert [w.caption.split(":")[0] for w in windows] == ["Endurance (pulses_per_switch = 5)",
                                                              "Endurance (pulses_per_switch = 10)"]
        assert _visible(windows[0])[0].get_ylabel() == "G (µS)"
        puf = drawn["puf_enroll"]["response_map"]
        assert "positions stable" in _visible(puf)[0].get_title() and "steadiness" in puf.caption
    finally:
        plt.close("all")
