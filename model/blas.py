"""BLAS and LAPACK called from numba, so the calls run without the GIL.

scipy's Python-level BLAS/LAPACK wrappers hold the GIL for the whole call; the readout's Gram
update and its solves are the longest single operations of learning (up to a second for a
Cholesky factorisation), and holding the GIL there stalls the other pipeline stages and the
service's event loop. The same routines are reached through ``scipy.linalg.cython_blas`` /
``cython_lapack`` (the very same OpenBLAS) from ``nogil`` kernels. Not cached on disk: the
function pointers differ between processes.
"""

from __future__ import annotations

import ctypes

import numba as nb
import numpy as np
from scipy.linalg import cython_blas, cython_lapack


def _function_pointer(name: str, module=cython_blas) -> int:
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


# void ssyrk(char *uplo, char *trans, int *n, int *k, float *alpha, float *a, int *lda,
#            float *beta, float *c, int *ldc)  — Fortran calling convention, every argument a pointer
_ssyrk = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 10))(_function_pointer("ssyrk"))
# void ssymm(char *side, char *uplo, int *m, int *n, float *alpha, float *a, int *lda, float *b,
#            int *ldb, float *beta, float *c, int *ldc)
_ssymm = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 12))(_function_pointer("ssymm"))
# void dpotrf(char *uplo, int *n, double *a, int *lda, int *info)
_dpotrf = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 5))(_function_pointer("dpotrf", cython_lapack))
# void dpotrs(char *uplo, int *n, int *nrhs, double *a, int *lda, double *b, int *ldb, int *info)
_dpotrs = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 8))(_function_pointer("dpotrs", cython_lapack))


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


@nb.njit(nogil=True)
def symm_lower(gram, PT, out_t):
    """``out_tᵀ = A·PTᵀ`` for the symmetric ``A`` held in the lower triangle of the C-ordered
    float32 ``gram``; ``PT`` and ``out_t`` are ``[columns, d]`` C-ordered (Fortran ``d x columns``).

    >>> G = np.array([[2, 0], [1, 3]], np.float32)         # A = [[2, 1], [1, 3]]
    >>> out = np.zeros((1, 2), np.float32)
    >>> symm_lower(G, np.array([[1, 1]], np.float32), out)
    >>> out.tolist()
    [[3.0, 4.0]]
    """
    cols, d = PT.shape
    # Fortran sees gram as Aᵀ with A's lower triangle in its upper one: side "L", uplo "U"
    flags = np.array([ord("L"), ord("U")], np.uint8)
    dims = np.array([d, cols, d, d, d], np.int32)  # m, n, lda, ldb, ldc
    scalars = np.array([1.0, 0.0], np.float32)
    _ssymm(flags[0:1].ctypes, flags[1:2].ctypes, dims[0:1].ctypes, dims[1:2].ctypes, scalars[0:1].ctypes,
           gram.ctypes, dims[2:3].ctypes, PT.ctypes, dims[3:4].ctypes, scalars[1:2].ctypes, out_t.ctypes,
           dims[4:5].ctypes)


@nb.njit(nogil=True)
def cholesky_solve_lower(system, BT):
    """Solve ``A·X = B`` in place for the symmetric positive definite ``A`` held in the lower
    triangle of the C-ordered float64 ``system`` (overwritten by its Cholesky factor); ``BT`` is
    ``Bᵀ`` (``[columns, d]``, C-ordered) and receives ``Xᵀ``. Returns LAPACK's ``info`` (0: solved;
    > 0: ``A`` is not positive definite).

    >>> A = np.array([[4.0, 0.0], [2.0, 3.0]])               # lower triangle of [[4, 2], [2, 3]]
    >>> BT = np.array([[6.0, 5.0]])
    >>> int(cholesky_solve_lower(A, BT)), np.round(BT, 12).tolist()
    (0, [[1.0, 1.0]])
    """
    cols, d = BT.shape
    uplo = np.array([ord("U")], np.uint8)
    dims = np.array([d, cols, d, d], np.int32)  # n, nrhs, lda, ldb
    info = np.zeros(1, np.int32)
    _dpotrf(uplo.ctypes, dims[0:1].ctypes, system.ctypes, dims[2:3].ctypes, info.ctypes)
    if info[0] != 0:
        return info[0]
    _dpotrs(uplo.ctypes, dims[0:1].ctypes, dims[1:2].ctypes, system.ctypes, dims[2:3].ctypes, BT.ctypes,
            dims[3:4].ctypes, info.ctypes)
    return info[0]


def warm_up() -> None:
    """Compile the kernels above now (they cannot be cached on disk; compiling holds the GIL for
    about a second, which a service should pay at startup rather than in its first solve)."""
    gram = np.eye(2, dtype=np.float32)
    syrk_lower(np.ones((1, 2), np.float32), gram, np.float32(1.0))
    symm_lower(gram, np.ones((1, 2), np.float32), np.empty((1, 2), np.float32))
    cholesky_solve_lower(gram.astype(np.float64), np.ones((1, 2)))
