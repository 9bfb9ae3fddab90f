"""Networks at the paper's scale: multi-tile mapping of the 784-256-128-10 network, the statistical
programming shortcut, `labctl eval inference` on MNIST IDX files, and the same numbers on 1 or 2 BLAS
threads."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from labctl.cli import main
from labctl.evaluation.inference import MLP, map_network
from labctl.evaluation.mapping import ConductanceRange, TileShape, map_layer
from labctl.evaluation.mvm import ProgrammedLayer
from labctl.evaluation.programming import ProgrammingNoiseLaw

PAPER_SIZES = [784, 256, 128, 10]


@pytest.mark.parametrize(("tile", "counts"), [(64, [65, 12, 2]), (256, [8, 1, 1]), (512, [2, 1, 1])])
def test_paper_network_maps_onto_tiles_of_any_size(tile: int, counts: list[int]) -> None:
    mlp = MLP.init(PAPER_SIZES, seed=0)
    maps = map_network(mlp, tile_shape=TileShape(tile, tile))
    assert [len(m.tiles) for m in maps] == counts  # offset scheme: tile - 1 outputs per tile
    for m, w in zip(maps, mlp.weights):
        assert all(t.shape[0] <= tile and t.shape[1] <= tile for t in m.tiles)
        np.testing.assert_allclose(m.effective_weights([t.targets for t in m.tiles]), w, rtol=0, atol=1e-12)


def test_programming_noise_law_is_fitted_and_drawn() -> None:
    rng = np.random.default_rng(12)
    m = map_layer(rng.uniform(-1, 1, (64, 63)), g_range=ConductanceRange())
    true = ProgrammingNoiseLaw(mean=-0.05e-6, sigma_floor=0.3e-6, sigma_slope=0.01)
    layers = true.program([m] * 6, rng)  # 6 x 4096 cells
    fit = ProgrammingNoiseLaw.fit(layers)
    assert fit.mean == pytest.approx(true.mean, abs=0.02e-6)
    assert fit.sigma(np.array([10e-6, 80e-6])) == pytest.approx(true.sigma(np.array([10e-6, 80e-6])), rel=0.1)
    assert fit.cells == 6 * 64 * 64
    again = fit.program([m], np.random.default_rng(1))[0]
    assert isinstance(again, ProgrammedLayer) and np.std(again.programming_error()) > 0.2e-6
    with pytest.raises(ValueError, match="layers"):
        ProgrammingNoiseLaw.fit([ProgrammedLayer(map_layer(np.ones((2, 2))), [np.ones((2, 3)) * 1e-5])])


def _idx(path: Path, data: np.ndarray) -> None:
    raw = bytes([0, 0, 0x08, data.ndim]) + struct.pack(f">{data.ndim}I", *data.shape) + data.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(raw))


def test_cli_inference_on_mnist_idx_files_with_a_deep_network(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    labels = {"train": np.arange(60) % 10, "t10k": np.arange(20) % 10}
    for kind, y in labels.items():  # a digit's class sets which band of rows is bright: learnable
        img = rng.integers(0, 40, (y.size, 28, 28), dtype=np.uint8)
        for k, c in enumerate(y):
            img[k, 2 * c:2 * c + 6] = 250
        _idx(tmp_path / f"{kind}-images-idx3-ubyte.gz", img)
        _idx(tmp_path / f"{kind}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    out = tmp_path / "out"
    assert main(["eval", "inference", "--mnist", str(tmp_path), "--hidden", "12,8", "--tile", "16", "--epochs", "20",
                 "--programming", "statistical", "--out", str(out)]) == 0
    res = json.loads((out / "inference.json").read_text())
    assert res["dataset"] == "mnist" and res["sizes"] == [784, 12, 8, 10]
    assert res["tiles"] == [49, 1, 1] and res["programming"] == "statistical"
    assert "statistical programming" in res["source"] and res["programming_noise_law"]["cells"] > 0
    assert len(res["accuracy"]) == 6 and res["accuracy_fp"] >= 0.9
    assert res["accuracy"][0] >= 0.6
    assert main(["eval", "inference", "--mnist", str(tmp_path), "--hidden", "12,x", "--out", str(out)]) == 2


def test_inference_and_mvm_are_bit_identical_on_one_or_two_blas_threads(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import emulator
        from labctl.evaluation.inference import MLP, AnalogNetwork, calibrate_input_scales, inference_over_time, map_network
        from labctl.evaluation.mapping import TileShape
        from labctl.evaluation.programming import ProgrammingNoiseLaw
        mlp = MLP.init([784, 96, 10], seed=3)
        rng = np.random.default_rng(3)
        x = rng.uniform(0, 1, (3000, 784))
        maps = map_network(mlp, tile_shape=TileShape(64, 64))
        net = AnalogNetwork(mlp, ProgrammingNoiseLaw(0.0, 1e-7, 0.01).program(maps, rng), calibrate_input_scales(mlp, x))
        res = inference_over_time(net, x, mlp.predict(x), times=[1.0, 3600.0], seed=3)
        arr = emulator.Array(128, 128, seed=3)
        arr.pulse(np.arange(128), np.arange(128), 3.4, 1.2, 1e-3)  # form a diagonal: an uneven array
        t = arr.transfer_matrix(workers=2)
        i = arr.mvm(rng.uniform(-0.2, 0.2, (5000, 128)))
        print(repr(res.accuracy), repr(res.rmse), t.tobytes().hex()[-64:], i.tobytes().hex()[:64], float(i.sum()).hex())
    """))
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
        run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout)
    assert outs[0] == outs[1] and outs[0].strip()
