"""`labctl eval inference` and `labctl eval training`: on a stored run or directly on the emulator,
writing PNG plots and one JSON file to --out."""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np


def add_eval_parser(sub: Any) -> None:
    """Register the `eval` subcommand group on the labctl subparsers."""
    ev = sub.add_parser("eval", help="MVM, inference-over-time and analog-training evaluation")
    evsub = ev.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")
    from labctl.cli import usage_error

    ev.set_defaults(handler=usage_error(ev))

    inf = evsub.add_parser("inference", help="program an MLP, evaluate accuracy and MVM RMSE over time")
    _common(inf, "out/eval-inference")
    inf.add_argument("--scheme", choices=("offset", "differential"), default="offset", help="weight mapping")
    inf.add_argument("--tile", type=int, default=64, help="tile rows and columns, e.g. 64, 256 or 512 (default 64)")
    inf.add_argument("--hidden", default="32",
                     help="hidden layer sizes, comma-separated (default 32; the paper's MNIST network: 256,128)")
    inf.add_argument("--mnist", default=None, help="folder with the four MNIST IDX files (instead of digits)")
    inf.add_argument("--programming", choices=("backend", "statistical"), default="backend",
                     help="program every tile on the emulated array, or program one array-full and draw the "
                          "rest from the programming-noise law fitted to it (labelled 'statistical')")
    inf.add_argument("--encoding", choices=("pulse_width", "amplitude"), default="pulse_width",
                     help="input encoding (amplitude: non-linear cells, Newton per vector; slow)")
    inf.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images only")
    inf.add_argument("--epochs", type=int, default=30, help="floating-point training epochs (default 30)")
    inf.add_argument("--weight-noise", type=float, default=0.0,
                     help="hardware-aware training: weight noise relative to the column's max |W| (default 0)")
    inf.add_argument("--tolerance", type=float, default=0.02, help="programming acceptance, relative (default 0.02)")
    inf.add_argument("--dac-bits", type=int, default=6)
    inf.add_argument("--adc-bits", type=int, default=8)
    inf.add_argument("--output-noise", type=float, default=0.0, help="normalized units (default 0)")
    inf.add_argument("--no-drift-compensation", action="store_true")
    inf.add_argument("--no-ir-drop", action="store_true")
    inf.set_defaults(handler=cmd_inference)

    tr = evsub.add_parser("training", help="fit the device model, train an MLP with analog algorithms")
    _common(tr, "out/eval-training")
    tr.add_argument("--algorithms", default="fp,sgd,ttv2,agad", help="comma-separated (default fp,sgd,ttv2,agad)")
    tr.add_argument("--epochs", type=int, default=None, help="epochs (default: the tuned setting)")
    tr.add_argument("--devices", type=int, default=8, help="emulated array side used for the device fit (default 8)")
    tr.add_argument("--mnist", default=None, help="folder with MNIST IDX files (also train on MNIST)")
    tr.set_defaults(handler=cmd_training)


def add_export_parser(sub: Any) -> None:
    """Register `labctl export aihwkit RUN --out DIR` (labctl.evaluation.aihwkit_export)."""
    ex = sub.add_parser("export", help="measured devices to other tools (aihwkit)")
    exsub = ex.add_subparsers(dest="export_command", metavar="TOOL")
    from labctl.cli import usage_error

    ex.set_defaults(handler=usage_error(ex))
    ai = exsub.add_parser("aihwkit", help="the run's noise model and pulsed device as aihwkit parameters")
    ai.add_argument("run", help="run id, unique prefix, or 'last'")
    ai.add_argument("--store", default=None, metavar="PATH", help="run store (default ./labctl-runs.sqlite)")
    ai.add_argument("--out", required=True, metavar="DIR", help="folder for noise_model.json/.py and device.json/.py")
    ai.add_argument("--force", action="store_true", help="replace files of an earlier export in DIR")
    ai.set_defaults(handler=cmd_export_aihwkit)


def cmd_export_aihwkit(args: argparse.Namespace) -> int:
    from labctl.campaigns.store import DEFAULT_STORE
    from labctl.evaluation.aihwkit_export import export_aihwkit

    store = Path(args.store or DEFAULT_STORE)
    if not store.is_file():
        raise FileNotFoundError(f"store: no run store at {store}")
    for path in export_aihwkit(store, args.run, args.out, force=args.force):
        print(path)
    return 0


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--store", default=None, help="run store (SQLite) to read measured data from")
    p.add_argument("--run", default="last", help="run id, prefix or 'last' (with --store)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--dataset", default="digits", choices=("digits",), help="data set (default digits)")
    p.add_argument("--out", default=out, help=f"output folder (default {out})")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=lambda o: np.asarray(o).tolist()))


def cmd_inference(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from labctl.backends import EmulatorBackend
    from labctl.evaluation.datasets import load_digits, load_mnist
    from labctl.evaluation.inference import (AnalogNetwork, calibrate_input_scales, inference_over_time,
                                             map_network, train_mlp)
    from labctl.evaluation.mapping import TileShape
    from labctl.evaluation.mvm import MVMConfig
    from labctl.evaluation.plots import plot_inference
    from labctl.evaluation.programming import ProgrammingNoiseLaw, place_tiles, program_layers
    from labctl.evaluation.relaxation import RelaxationLaw, fit_relaxation
    from labctl.backends.base import ProgramSettings

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        hidden = [int(h) for h in str(args.hidden).split(",") if h.strip()]
    except ValueError:
        raise ValueError(f"--hidden: expected comma-separated integers, got {args.hidden!r}") from None
    if any(h < 1 for h in hidden):
        raise ValueError(f"--hidden: layer sizes must be >= 1, got {args.hidden!r}")
    if args.tile < 2:
        raise ValueError(f"--tile: must be >= 2 rows and columns, got {args.tile}")
    data = load_mnist(args.mnist, limit_test=args.test_limit) if args.mnist else load_digits(seed=args.seed)
    x_test, y_test = data.x_test[:args.test_limit], data.y_test[:args.test_limit]
    mlp = train_mlp(data.x_train, data.y_train, [data.n_inputs, *hidden, data.n_classes], epochs=args.epochs,
                    seed=args.seed, weight_noise=args.weight_noise)
    law = RelaxationLaw.from_preset()
    source = "emulator"
    if args.store:
        from labctl.evaluation.runs import load_run

        run = load_run(args.store, args.run)
        source = f"run {run.run_id}"
        if run.has_retention:
            law = fit_relaxation(run.retention_times, run.retention_g, run.retention_g_prog)
    mappings = map_network(mlp, scheme=args.scheme, tile_shape=TileShape(args.tile, args.tile))
    statistical = args.programming == "statistical"

    async def program() -> list:  # type: ignore[type-arg]
        async with EmulatorBackend(args.tile, args.tile, seed=args.seed) as backend:
            settings = ProgramSettings(tolerance=args.tolerance)
            if not statistical:
                return await program_layers(backend, mappings, settings)
            # One array-full of the network's own tiles is programmed; the law fitted to it draws all tiles.
            first = [p for p in place_tiles(mappings, backend.rows, backend.cols) if p.round == 0]
            sample = [replace(mappings[0], tiles=[mappings[p.layer].tiles[p.tile] for p in first])]
            return await program_layers(backend, sample, settings)

    programmed = asyncio.run(program())
    noise = None
    if statistical:
        noise = ProgrammingNoiseLaw.fit(programmed)
        layers = noise.program(mappings, np.random.default_rng(args.seed + 1))
        source += f", statistical programming (noise law fitted to {noise.cells} programmed cells)"
    else:
        layers = programmed
    net = AnalogNetwork(mlp, layers, calibrate_input_scales(mlp, data.x_train))
    cfg = MVMConfig(dac_bits=args.dac_bits, adc_bits=args.adc_bits, output_noise=args.output_noise,
                    drift_compensation=not args.no_drift_compensation, r_wire=0.0 if args.no_ir_drop else 0.35,
                    encoding=args.encoding)
    res = inference_over_time(net, x_test, y_test, cfg=cfg, law=law, seed=args.seed)
    plot_inference(res, out / "inference.png")
    summary = {"source": source, "dataset": data.name, "sizes": mlp.sizes, "tile": args.tile,
               "tiles": [len(m.tiles) for m in mappings], **res.to_dict(),
               "programming": "statistical" if statistical else "backend",
               "programming_noise_law": noise.to_dict() if noise else None,
               "programming_error_std_s": [float(np.std(l.programming_error())) for l in layers]}
    _write_json(out / "inference.json", summary)
    for label, acc in zip(res.labels, res.accuracy):
        print(f"{label:>9}: accuracy {100 * acc:.2f} %  (floating point {100 * res.accuracy_fp:.2f} %)")
    print(f"wrote {out / 'inference.png'} and {out / 'inference.json'}")
    return 0


def cmd_training(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from labctl.evaluation.datasets import load_digits, load_mnist
    from labctl.evaluation.devicefit import DevicePopulation, fit_devices, fit_sequences
    from labctl.evaluation.plots import plot_training
    from labctl.evaluation.training import DIGITS_SETTINGS, DeviceSource, train_algorithms

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if args.store:
        from labctl.evaluation.runs import load_run

        run = load_run(args.store, args.run)
        if not run.has_open_loop:
            raise ValueError(f"run: {run.run_id} holds no open-loop traces (pulse_read / symmetry_read)")
        params = fit_sequences(run.open_loop_g, run.open_loop_direction)
        source = f"run {run.run_id}"
    else:
        params = fit_devices(*asyncio.run(emulated_open_loop(args.devices, args.seed)))
        source = f"emulator {args.devices}x{args.devices} cmo-hfox seed {args.seed}"
    population = DevicePopulation.from_devices(params)
    base = replace(DIGITS_SETTINGS, seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    datasets = [load_digits(seed=args.seed)]
    if args.mnist:
        datasets.append(load_mnist(args.mnist))
    summary: dict[str, Any] = {"source": source, "device_fit": params.summary(), "population": population.to_dict()}
    for data in datasets:
        results = train_algorithms(data, algorithms, base, DeviceSource(population=population), progress=True)
        plot_training(results, out / f"training-{data.name}.png")
        summary[data.name] = {k: v.to_dict() for k, v in results.items()}
        for k, v in results.items():
            print(f"{data.name} {k:>5}: final test accuracy {100 * v.accuracy[-1]:.2f} %")
    _write_json(out / "training.json", summary)
    print(f"wrote {out / 'training.json'} and the training-*.png plots")
    return 0


async def emulated_open_loop(side: int, seed: int, preset: Any = "cmo-hfox") -> tuple[Any, ...]:
    """REF open-loop traces of a freshly formed side x side emulated array (`preset`: a name or an
    emulator.Preset, e.g. with device parameters changed for a study)."""
    from labctl.backends import EmulatorBackend
    from labctl.evaluation.devicefit import measure_open_loop
    from labctl.evaluation.programming import prepare_cells

    async with EmulatorBackend(side, side, seed=seed, preset=preset) as backend:
        r, c = np.divmod(np.arange(side * side, dtype=np.int64), side)
        await prepare_cells(backend, r, c)
        return await measure_open_loop(backend, r, c)
