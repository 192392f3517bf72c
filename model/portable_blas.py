"""One OpenBLAS kernel family on every x86-64 host, so that a replayed stream gives the same state.

OpenBLAS chooses its kernels by CPU when it is loaded (Haswell kernels on AVX2 CPUs, SkylakeX on
AVX-512 ones, …), and the families add in different orders. The readout's Gram updates and solves
run on OpenBLAS, so the learned state differed in its last bits between hosts: the same seeded
stream gave another ``state_digest`` on an AVX-512 host than on an AVX2 host, and here another one
under ``OPENBLAS_CORETYPE=SandyBridge`` than under the automatic choice. A service that replays its
log on another node, or compares a replica's digest with the learner's, needs them to agree.

:func:`pin_openblas_kernels` selects the Haswell family (AVX2 + FMA: Intel since Haswell, AMD
since Zen — practically every x86-64 server in service) through ``OPENBLAS_CORETYPE``. OpenBLAS
reads it once, when numpy or scipy first loads it (both libraries: numpy's serves the readout's
``F.T @ targets``, scipy's its SYRK/SYMM/Cholesky calls), so importing ``model`` (which ``service``
does first) pins it before numpy loads. A program that imports numpy first gets no pin and no
warning (most do, and most never replay across hosts): it must set ``OPENBLAS_CORETYPE=Haswell``
itself; :func:`openblas_kernels` tells which family is in use. A value already in the environment
is left alone (set another family there to opt out). The CPU is read from ``/proc/cpuinfo``, so
this pins on Linux only; on other systems and CPUs nothing is pinned.

:func:`quiet_openblas_workers`, also called on ``import model``, shortens how long OpenBLAS's
worker threads spin after a parallel call before they sleep (``OPENBLAS_THREAD_TIMEOUT``: 2^28
cycles, ~0.1 s, by default). After each readout solve (on two BLAS threads) a spinning worker took
a core's time from the prediction and learning threads: ~70 ms of CPU during the first prediction
pass after learning, 10-20 % of that pass. Sleeping at once costs the next solve a wake-up of a
few microseconds. Results do not change (only idle behaviour).
"""

from __future__ import annotations

import os
import platform
import sys

PORTABLE_CORETYPE = "Haswell"
_REQUIRED_FLAGS = ("avx2", "fma")


def _cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def pin_openblas_kernels(environ=os.environ, cpuinfo: str = "/proc/cpuinfo", modules=sys.modules) -> str | None:
    """Select the portable kernel family if OpenBLAS is not loaded yet; return the family that
    ``OPENBLAS_CORETYPE`` now names (the user's own value wins), or ``None`` if nothing is pinned.

    >>> pin_openblas_kernels({"OPENBLAS_CORETYPE": "Zen"})
    'Zen'
    """
    if environ.get("OPENBLAS_CORETYPE"):
        return environ["OPENBLAS_CORETYPE"]
    if "numpy" in modules or platform.machine().lower() not in ("x86_64", "amd64"):
        return None  # too late (OpenBLAS chose at load), or not an x86-64 build
    if not set(_REQUIRED_FLAGS) <= _cpu_flags(cpuinfo):
        return None  # an older CPU cannot run these kernels: keep the automatic choice
    environ["OPENBLAS_CORETYPE"] = PORTABLE_CORETYPE
    return PORTABLE_CORETYPE


# OpenBLAS's spin before sleeping, as a power of two of cycles: 4 is its minimum (16 cycles)
QUIET_THREAD_TIMEOUT = "4"


def quiet_openblas_workers(environ=os.environ, modules=sys.modules) -> str | None:
    """Make idle OpenBLAS workers sleep at once if OpenBLAS is not loaded yet; return the value of
    ``OPENBLAS_THREAD_TIMEOUT`` now in effect (the user's own wins), or ``None`` if too late.

    >>> quiet_openblas_workers({"OPENBLAS_THREAD_TIMEOUT": "20"})
    '20'
    >>> quiet_openblas_workers({}, modules={})
    '4'
    """
    if environ.get("OPENBLAS_THREAD_TIMEOUT"):
        return environ["OPENBLAS_THREAD_TIMEOUT"]
    if "numpy" in modules:
        return None  # OpenBLAS read its settings when numpy loaded it
    environ["OPENBLAS_THREAD_TIMEOUT"] = QUIET_THREAD_TIMEOUT
    return QUIET_THREAD_TIMEOUT


def openblas_kernels() -> list[str]:
    """The kernel families of the OpenBLAS libraries this process loaded (numpy's and scipy's)."""
    from threadpoolctl import threadpool_info

    return sorted({str(info.get("architecture")) for info in threadpool_info() if info.get("internal_api") == "openblas"})
