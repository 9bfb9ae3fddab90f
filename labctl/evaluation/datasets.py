"""Data sets for inference and training studies: scikit-learn's 8x8 digits (shipped with the package,
no download) and MNIST from IDX files at a user path.

Images are returned as float64 in [0, 1], shape (n, pixels); labels as int64.
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

# IDX type codes (LeCun's MNIST format): 0x08 unsigned byte, 0x09 signed byte, 0x0B short, 0x0C int,
# 0x0D float, 0x0E double; big-endian.
_IDX_TYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Dataset:
    """A train/test split: inputs in [0, 1], integer labels."""

    name: str
    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def load_digits(test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, 64 inputs in [0, 1]); a 0.3 test fraction leaves 1,257
    training images. The split is stratified and seeded."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: must be in (0, 1), got {test_fraction!r}")
    data = sk_load_digits()
    x = data.data.astype(np.float64) / 16.0  # pixels are 0..16
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te)


def read_idx(path: str | Path) -> NDArray:
    """Read one IDX file (optionally gzip-compressed): magic 0x0000TTDD, DD dimensions as big-endian
    uint32, then the data. Returns an array of the stored type and shape."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path: no IDX file at {p}")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{p}: not an IDX file (magic must start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{p}: IDX type code 0x{code:02X} is not one of "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_TYPES)}")
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{p}: truncated IDX header ({ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[code])
    n = int(np.prod(dims))
    body = raw[4 + 4 * ndim:]
    if len(body) != n * dtype.itemsize:
        raise ValueError(f"{p}: IDX body has {len(body)} bytes, dimensions {dims} need {n * dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ValueError(f"path: {folder} has no {stem}[.gz]")


def load_mnist(path: str | Path, limit_train: int | None = None, limit_test: int | None = None) -> Dataset:
    """MNIST from the four IDX files in folder `path` (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz). Images flattened, scaled to [0, 1]."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"path: {folder} is not a folder with MNIST IDX files")
    parts = []
    for kind in ("train", "t10k"):
        images = read_idx(_find(folder, f"{kind}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{kind}-labels-idx1-ubyte"))
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{kind}: {images.shape[0]} images but {labels.shape[0]} labels")
        x = images.reshape(images.shape[0], -1).astype(np.float64)
        if images.dtype == np.uint8:
            x /= 255.0  # MNIST pixels are 0..255
        parts.append((x, labels.astype(np.int64)))
    (x_tr, y_tr), (x_te, y_te) = parts
    if limit_train is not None:
        x_tr, y_tr = x_tr[:limit_train], y_tr[:limit_train]
    if limit_test is not None:
        x_te, y_te = x_te[:limit_test], y_te[:limit_test]
    return Dataset("mnist", x_tr, y_tr, x_te, y_te)
