"""IDX dataset loader (the four-file MNIST layout), with optional checksum-verified download."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# published MNIST checksums (md5 of the .gz files)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DATA_ENV = "HEBB_DATA_DIR"


class DatasetError(ValueError):
    """The dataset directory is missing files or holds malformed IDX data."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or plain) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic)")
    dtype_code, ndim = data[2], data[3]
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise DatasetError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    dtype = np.dtype(dtypes[dtype_code])
    if len(data) - offset != count * dtype.itemsize:
        raise DatasetError(f"{path}: expected {count} items of shape {shape}, file size disagrees")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    value = data_dir or os.environ.get(DATA_ENV)
    if not value:
        raise DatasetError(f"no dataset directory: pass --data DIR or set {DATA_ENV}")
    return Path(value).expanduser()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def download_mnist(directory: str | os.PathLike, mirrors=MNIST_MIRRORS) -> Path:
    """Fetch any missing MNIST file into ``directory`` and verify every file's md5."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_MD5.items():
        target = directory / name
        if target.exists() and _md5(target) == md5:
            continue
        errors = []
        for base in mirrors:
            tmp = target.with_suffix(".part")
            try:
                urllib.request.urlretrieve(base + name, tmp)
            except OSError as exc:
                errors.append(f"{base}: {exc}")
                continue
            if _md5(tmp) != md5:
                tmp.unlink(missing_ok=True)
                errors.append(f"{base}: checksum mismatch")
                continue
            tmp.replace(target)
            break
        else:
            raise DatasetError(f"could not download {name}: " + "; ".join(errors))
    return directory


def load_dataset(data_dir: str | os.PathLike | None = None, download: bool = False) -> dict[str, np.ndarray]:
    """Load train/test images and labels from a directory in the four-file IDX layout.

    Images come back as ``uint8[N, H, W]`` and labels as ``int64[N]``. With ``download=True``
    missing MNIST files are fetched and checksum-verified first.
    """
    directory = resolve_data_dir(data_dir)
    missing = [name for name in FILES.values() if not (directory / name).exists()]
    if missing:
        if not download:
            raise DatasetError(f"{directory} lacks {', '.join(missing)} (use --download to fetch MNIST)")
        download_mnist(directory)
    out = {key: read_idx(directory / name) for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = out[f"{split}_images"], out[f"{split}_labels"]
        if images.ndim != 3:
            raise DatasetError(f"{split} images must be (N, H, W), got {images.shape}")
        if len(images) != len(labels):
            raise DatasetError(f"{split}: {len(images)} images but {len(labels)} labels")
        out[f"{split}_labels"] = labels.astype(np.int64)
    return out
