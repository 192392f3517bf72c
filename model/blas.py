"""BLAS called from numba, so the call runs without the GIL.

scipy's Python-level BLAS wrappers hold the GIL for the whole call; the readout's Gram update is
the longest single operation of learning, and holding the GIL there stalls the other pipeline
stages and the service's event loop. The same routine is reached through
``scipy.linalg.cython_blas`` (the very same OpenBLAS, so identical results) from a ``nogil`` kernel.
Not cached on disk: the function pointer differs between processes.
"""

from __future__ import annotations

import ctypes

import numba as nb
import numpy as np
from scipy.linalg import cython_blas


def _function_pointer(name: str) -> int:
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


# void ssyrk(char *uplo, char *trans, int *n, int *k, float *alpha, float *a, int *lda,
#            float *beta, float *c, int *ldc)  — Fortran calling convention, every argument a pointer
_ssyrk = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 10))(_function_pointer("ssyrk"))


@nb.njit(nogil=True)
def syrk_lower(F, gram, beta):
    """``gram ← beta·gram + Fᵀ·F`` on the lower triangle of the C-ordered ``gram`` (float32).

    >>> F = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> G = np.zeros((3, 3), np.float32)
    >>> syrk_lower(F, G, np.float32(0.0))
    >>> G.tolist()
    [[9.0, 0.0, 0.0], [12.0, 17.0, 0.0], [15.0, 22.0, 29.0]]
    """
    n, d = F.shape
    # for Fortran, C-ordered F (n x d) is the d x n matrix Fᵀ and C-ordered gram's lower triangle
    # is the upper triangle of its transpose: so "U", "N" with leading dimensions d
    uplo = np.array([ord("U")], np.uint8)
    trans = np.array([ord("N")], np.uint8)
    dims = np.array([d, n, d, d], np.int32)  # n, k, lda, ldc in BLAS terms
    scalars = np.array([1.0, beta], np.float32)
    _ssyrk(uplo.ctypes, trans.ctypes, dims[0:1].ctypes, dims[1:2].ctypes, scalars[0:1].ctypes, F.ctypes,
           dims[2:3].ctypes, scalars[1:2].ctypes, gram.ctypes, dims[3:4].ctypes)
