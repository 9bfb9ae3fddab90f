"""`labctl puf enroll | reconstruct | evaluate` (added to the `labctl` parser by labctl/cli.py).

The key is never printed: `--key-out FILE` writes it (hex, file mode 0600, created atomically,
never through a symlink) for the application that needs it. No output file is overwritten without
`--force`; existing outputs are refused before anything is measured. On the emulator, `--state FILE`
keeps the emulated chip between commands (its snapshot, like the physical chip, holds the cells' state).

Exit status: 0 done; 1 the operation failed (no key: the helper data failed authentication; the
array could not be enrolled; the backend could not be reached); 2 bad input (arguments, an unreadable
or malformed helper file, an existing output without --force, a backend of another size).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def add_parser(sub: Any) -> None:
    """Add the `puf` subcommand group to the `labctl` subparsers."""
    puf = sub.add_parser("puf", help="PUF enrollment, key reconstruction and batch evaluation")
    psub = puf.add_subparsers(dest="puf_command", metavar="PUF_COMMAND")

    def backend_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", default="emulator:32x32?seed=0",
                       help="backend address (default emulator:32x32?seed=0; see labctl.backends.open_backend)")
        p.add_argument("--state", help="emulator only: file with the emulated chip's state (read if it exists, "
                                       "written afterwards)")

    enroll = psub.add_parser("enroll", help="enroll an array: helper data (public) and a key")
    backend_args(enroll)
    enroll.add_argument("--helper", required=True, help="helper-data JSON file to write")
    enroll.add_argument("--method", choices=("pairs", "median", "forming"), default="pairs")
    enroll.add_argument("--prepare", choices=("none", "form_set"), default="none",
                        help="form, reset and set the cells first (default none)")
    enroll.add_argument("--reads", type=_positive_int, default=5, help="enrollment reads (default 5)")
    enroll.add_argument("--v-read", type=float, default=0.2, help="read bias, V (default 0.2)")
    enroll.add_argument("--target-failure", type=float, default=1e-6,
                        help="key-failure probability the code is designed for (default 1e-6)")
    enroll.add_argument("--design-ber", type=float, default=None, help="design bit error rate (default: measured)")
    enroll.add_argument("--ber-floor", type=float, default=0.01, help="least design bit error rate (default 0.01)")
    enroll.add_argument("--secret-bits", type=int, default=128, help="secret bits (default 128)")
    enroll.add_argument("--report", help="write the enrollment report (JSON) here")
    enroll.add_argument("--key-out", help="write the key (hex) to this new file, mode 0600")
    enroll.add_argument("--force", action="store_true", help="overwrite existing --helper, --report and --key-out "
                                                             "files (the old helper data's key is lost)")
    enroll.set_defaults(handler=_guarded(_cmd_enroll))

    rec = psub.add_parser("reconstruct", help="regenerate the key from a fresh read")
    backend_args(rec)
    rec.add_argument("--helper", required=True, help="helper-data JSON file")
    rec.add_argument("--wait", type=float, default=0.0, help="let this many seconds pass first, s (emulator: "
                                                              "virtual time, relaxation)")
    rec.add_argument("--v-read", type=float, default=None, help="read bias, V (default: the enrollment's)")
    rec.add_argument("--reads", type=_positive_int, default=1, help="reads averaged (default 1)")
    rec.add_argument("--key-out", help="write the key (hex) to this new file, mode 0600")
    rec.add_argument("--force", action="store_true", help="overwrite an existing --key-out file")
    rec.set_defaults(handler=_guarded(_cmd_reconstruct))

    ev = psub.add_parser("evaluate", help="enroll and re-read a batch of emulated arrays; metrics, plots, JSON")
    ev.add_argument("--arrays", type=_positive_int, default=100, help="emulated arrays (seeds) (default 100)")
    ev.add_argument("--first-seed", type=int, default=0, help="seed of the first array (default 0)")
    ev.add_argument("--rows", type=int, default=32)
    ev.add_argument("--cols", type=int, default=32)
    ev.add_argument("--method", choices=("pairs", "median", "forming"), default="pairs")
    ev.add_argument("--target-failure", type=float, default=1e-6)
    ev.add_argument("--no-entropy", action="store_true", help="skip the SP 800-90B assessment")
    ev.add_argument("--out", default="out/puf", help="folder for the report and plots (default out/puf)")
    ev.add_argument("--force", action="store_true", help="overwrite an earlier report and plots in --out")
    ev.set_defaults(handler=_guarded(_cmd_evaluate))

    def no_command(args: argparse.Namespace) -> int:
        puf.print_help(sys.stderr)
        return 2  # bad input: a PUF command is needed

    puf.set_defaults(handler=no_command)


def _guarded(handler: Any) -> Any:
    """Errors of the operation (not of its input) as one line and exit status 1; bad input
    (ValueError) goes on to labctl.cli, which prints it and exits 2."""
    def run(args: argparse.Namespace) -> int:
        from labctl.puf.enroll import EnrollmentError
        from labctl.puf.health import HealthTestFailure

        try:
            return int(handler(args))
        except (EnrollmentError, HealthTestFailure) as exc:
            print(f"labctl: error: enrollment failed: {exc}", file=sys.stderr)
            return 1
        except (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
            where = getattr(args, "backend", None)
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
            name = f" {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
            print(f"labctl: error: {('backend ' + repr(where) + ': ') if where and not name else ''}"
                  f"{what}{name}", file=sys.stderr)
            return 1
    return run


def _write_secret(path: str, key: bytes, force: bool) -> None:
    from labctl.puf.helper import write_new_file

    write_new_file(path, (key.hex() + "\n").encode(), mode=0o600, force=force)


async def _with_backend(args: argparse.Namespace, work: Any) -> Any:
    from labctl.backends import open_backend
    from labctl.backends.emulator import EmulatorBackend

    backend = open_backend(args.backend)
    state = Path(args.state) if args.state else None
    if state is not None and not isinstance(backend, EmulatorBackend):
        raise ValueError(f"--state: only for emulator backends, not {args.backend!r}")
    async with backend:
        if state is not None and state.exists():
            backend.array.restore(state.read_bytes())
        try:
            return await work(backend)
        finally:
            if state is not None:
                state.write_bytes(backend.array.snapshot())


def _params(model: Any, **values: Any) -> Any:
    """A pydantic settings model from options; a bad value is one line naming the option."""
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else model.__name__
        raise ValueError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None


def _cmd_enroll(args: argparse.Namespace) -> int:
    from labctl.puf.enroll import EnrollParams, enroll
    from labctl.puf.helper import check_writable, write_new_file

    params = _params(EnrollParams, method=args.method, prepare=args.prepare, reads=args.reads, v_read=args.v_read,
                     target_failure=args.target_failure, design_ber=args.design_ber,
                     ber_floor=args.ber_floor, secret_bits=args.secret_bits)
    outputs = [p for p in (args.helper, args.report, args.key_out) if p]
    if len(set(map(os.path.abspath, outputs))) != len(outputs):
        raise ValueError("--helper, --report, --key-out: give three different files")
    for path in outputs:  # refused before the array is touched (enrollment may form its cells)
        check_writable(path, args.force)
    enrollment = asyncio.run(_with_backend(args, lambda b: enroll(b, params)))
    enrollment.helper.save(args.helper, force=args.force)  # first: with it, a lost key file can be reconstructed
    if args.key_out:
        _write_secret(args.key_out, enrollment.key, args.force)
    if args.report:
        write_new_file(args.report, (json.dumps(enrollment.report, indent=2) + "\n").encode(), force=args.force)
    d, c = enrollment.helper.design, enrollment.helper.code
    chosen = enrollment.report["code_design"]["chosen"]
    print(f"enrolled ({enrollment.helper.response.method}): {d.stable_positions}/{enrollment.helper.response.positions} "
          f"stable positions, {d.used_positions} used")
    print(f"code: BCH(m={c.bch_m}, t={c.bch_t}, {c.data_bytes} data bytes) x {c.blocks} block(s), repetition "
          f"{c.repetition}; design BER {d.design_ber:.3g} ({enrollment.report['code_design']['design_ber_source']}, "
          f"measured raw {d.measured_raw_ber:.3g})")
    print(f"key failure: p_inner {chosen['p_inner']:.3g}, p_block {chosen['p_block']:.3g}, p_key {chosen['p_key']:.3g} "
          f"(target {d.target_failure:g})")
    print(f"helper data: {args.helper}" + (f"; key: {args.key_out}" if args.key_out else " (key not written)"))
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from labctl.puf.enroll import reconstruct
    from labctl.puf.extractor import KeyReconstructionError
    from labctl.puf.helper import HelperData

    from labctl.puf.helper import check_writable

    helper = HelperData.load(args.helper)
    if args.key_out:
        check_writable(args.key_out, args.force)

    async def work(backend: Any) -> Any:
        if args.wait:
            await backend.wait(args.wait)
        return await reconstruct(backend, helper, args.reads, args.v_read)

    try:
        out = asyncio.run(_with_backend(args, work))
    except KeyReconstructionError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 1
    if args.key_out:
        _write_secret(args.key_out, out.key, args.force)
    print("key reconstructed and authenticated" + (f"; key: {args.key_out}" if args.key_out else ""))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from labctl.puf.enroll import EnrollParams
    from labctl.puf.evaluate import EvaluationParams, evaluate_batch, output_paths, write_outputs

    params = _params(EvaluationParams, arrays=args.arrays, first_seed=args.first_seed, rows=args.rows,
                     cols=args.cols,
                     enroll=_params(EnrollParams, method=args.method, prepare="form_set",
                                    target_failure=args.target_failure),
                     entropy_assessment=not args.no_entropy)
    from labctl.puf.helper import check_writable

    for path in output_paths(args.out):  # refused before hours of evaluation, not after
        check_writable(path, args.force)
    with Progress(transient=True) as bar:
        task = bar.add_task("enrolling and re-reading", total=args.arrays)
        ev = asyncio.run(evaluate_batch(params, lambda done, total: bar.update(task, completed=done)))
    paths = write_outputs(ev, args.out, args.force)
    r = ev.report
    k = r["key_reconstruction"]
    print(f"{r['devices_enrolled']} devices, {r['response_bits']} bits: uniformity {r['uniformity']['mean']:.4f}, "
          f"uniqueness {r['uniqueness']['mean']:.4f}, steadiness {r['steadiness_overall']['mean']:.4f}, "
          f"min-entropy/bit {r['min_entropy_per_bit']['mean']:.4f}")
    print(f"key reconstruction: {k['failures']} failures, {k['wrong_keys']} wrong keys in {k['attempts']} attempts")
    if "sp800_90b" in r:
        print(f"SP 800-90B min-entropy {r['sp800_90b']['min_entropy']:.4f} bit/bit over {r['sp800_90b']['n_bits']} bits")
    for name, p in paths.items():
        print(f"{name}: {p}")
    return 0
