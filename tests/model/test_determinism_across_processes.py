"""The same seed and stream give the same state in every process: whether numba compiles the
kernels afresh or loads them from its on-disk cache (a restarted service does the latter while the
run it must reproduce did the former)."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, sys
from model import Network
from model.data import load_dataset
ds = load_dataset(sys.argv[1])
net = Network("mnist", seed=3)
net.learn_many(ds["train_images"][:1200], ds["train_labels"][:1200])
print(json.dumps({"digest": net.state_digest(), "solves": net.readout.solves}))
"""


def _run(cache_dir, data_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(data_dir)], env=env, capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fresh_compile_and_cached_kernels_learn_identically(tmp_path, data_dir):
    fresh = _run(tmp_path / "numba-cache", data_dir)  # empty cache: everything compiled now
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the first process should have filled the cache"
    cached = _run(tmp_path / "numba-cache", data_dir)  # the same kernels, loaded from the cache
    assert fresh["solves"] > 0
    assert cached["digest"] == fresh["digest"]
