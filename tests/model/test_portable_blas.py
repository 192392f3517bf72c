"""The engine pins one OpenBLAS kernel family on x86-64 hosts with AVX2, so that a replayed stream
learns the same state on any of them (the families round differently)."""

import json
import os
import subprocess
import sys

import numpy  # noqa: F401  (loads OpenBLAS, so openblas_kernels() below can see it)
import pytest
import scipy.linalg  # noqa: F401

from model import portable_blas
from model.portable_blas import (PORTABLE_CORETYPE, QUIET_THREAD_TIMEOUT, openblas_kernels, pin_openblas_kernels,
                                 quiet_openblas_workers)


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(portable_blas.platform, "machine", lambda: "x86_64")


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    return str(path)


def test_pins_the_portable_family_before_openblas_loads(tmp_path, x86):
    environ = {}
    assert pin_openblas_kernels(environ, _cpuinfo(tmp_path, "sse2 avx avx2 fma f16c"), modules={}) == PORTABLE_CORETYPE
    assert environ == {"OPENBLAS_CORETYPE": PORTABLE_CORETYPE}


def test_a_family_the_user_chose_is_kept(tmp_path, x86):
    environ = {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert pin_openblas_kernels(environ, _cpuinfo(tmp_path, "avx2 fma"), modules={}) == "SkylakeX"
    assert environ == {"OPENBLAS_CORETYPE": "SkylakeX"}


@pytest.mark.parametrize("flags, modules", [
    ("sse2 avx avx2 fma", {"numpy": object()}),  # OpenBLAS already loaded: the variable would do nothing
    ("sse2 avx", {}),  # no AVX2/FMA: these kernels would not run
])
def test_nothing_is_pinned_when_it_cannot_work(tmp_path, x86, flags, modules):
    environ = {}
    assert pin_openblas_kernels(environ, _cpuinfo(tmp_path, flags), modules=modules) is None
    assert environ == {}


def test_nothing_is_pinned_on_other_architectures(tmp_path, monkeypatch):
    monkeypatch.setattr(portable_blas.platform, "machine", lambda: "aarch64")
    environ = {}
    assert pin_openblas_kernels(environ, _cpuinfo(tmp_path, "avx2 fma"), modules={}) is None
    assert environ == {}


@pytest.mark.skipif(not {"avx2", "fma"} <= portable_blas._cpu_flags() or not openblas_kernels(),
                    reason="needs an x86-64 CPU with AVX2 and FMA, and numpy on OpenBLAS")
@pytest.mark.parametrize("package", ["model", "service"])
def test_importing_the_package_first_loads_openblas_with_the_portable_family(package):
    script = (f"import os, {package}, numpy, scipy.linalg\n"
              "from model.portable_blas import openblas_kernels\n"
              "import json; print(json.dumps([os.environ.get('OPENBLAS_CORETYPE'), openblas_kernels()]))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    coretype, kernels = json.loads(out.stdout.strip().splitlines()[-1])
    assert coretype == PORTABLE_CORETYPE
    assert kernels == [PORTABLE_CORETYPE]


def test_importing_the_service_loads_neither_numpy_nor_the_engine():
    """The pin must run before numpy loads, and ``hebb --help`` should not pay for the engine."""
    script = "import sys, service, service.cli; print(sorted(m for m in ('numpy', 'model.network') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_idle_openblas_workers_are_quieted_unless_set_or_too_late():
    environ = {}
    assert quiet_openblas_workers(environ, modules={}) == "4" and environ == {"OPENBLAS_THREAD_TIMEOUT": "4"}
    environ = {"OPENBLAS_THREAD_TIMEOUT": "28"}  # the user's own value wins
    assert quiet_openblas_workers(environ, modules={}) == "28" and environ == {"OPENBLAS_THREAD_TIMEOUT": "28"}
    environ = {}
    assert quiet_openblas_workers(environ, modules={"numpy": object()}) is None and environ == {}


@pytest.mark.parametrize("package", ["model", "service"])
def test_importing_the_package_first_quiets_openblas_workers(package):
    script = f"import os, {package}, numpy\nprint(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == QUIET_THREAD_TIMEOUT
