"""LightGBM's own C library, called directly: the native model call without the package.

Importing the ``lightgbm`` Python package also imports pandas, SciPy and scikit-learn
(its ``compat`` module probes for them), about 190 MB per process before any model is
loaded (issue 15). A prediction worker needs none of that to score a Booster: the
library the wheel ships (``lightgbm/lib/lib_lightgbm.so``) exposes the same prediction
through its documented C API (``c_api.h``), which is exactly what ``Booster.predict``
calls. :class:`NativeBooster` loads a saved model string and predicts through
``LGBM_BoosterPredictForMat`` (several rows) or ``LGBM_BoosterPredictForMatSingleRowFast``
(one row, set up once), with the parameters ``Booster.predict`` passes, so the numbers are
the package's own; :mod:`shipway.scoring.servingform` checks that bit for bit at load.
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
import threading
from functools import cache
from pathlib import Path

import numpy as np

_DTYPE_FLOAT32 = 0  # C_API_DTYPE_FLOAT32
_ROW_MAJOR = 1
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the value, or the positive class's probability


class LightGBMError(RuntimeError):
    """The C library refused a call; the message is LightGBM's own."""


def _library_name() -> str:
    system = platform.system()
    if system == "Windows":
        return "lib_lightgbm.dll"
    return "lib_lightgbm.dylib" if system == "Darwin" else "lib_lightgbm.so"


@cache
def library() -> ctypes.CDLL:
    """The wheel's ``lib_lightgbm``, found where ``lightgbm.libpath`` looks, without
    importing the ``lightgbm`` package (``find_spec`` only locates it)."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise LightGBMError("the lightgbm package is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    name = _library_name()
    for folder in (package / "lib", package / "bin", package.parent):
        if (folder / name).is_file():
            lib = ctypes.cdll.LoadLibrary(str(folder / name))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            return lib
    raise LightGBMError(f"{name} not found in {package}")


def _check(code: int) -> None:
    if code != 0:
        raise LightGBMError(library().LGBM_GetLastError().decode("utf-8", "replace"))


class NativeBooster:
    """A LightGBM model loaded from its text form, predicting like ``Booster.predict``.

    ``num_iteration`` is what ``Booster.predict`` uses by default (the booster's
    ``best_iteration``; 0 or less: every tree). One-row calls go through the fast
    single-row entry point, set up once per thread count; LightGBM's fast config is not
    documented as safe to share between threads, so those calls are serialized by a lock
    (each takes microseconds).
    """

    def __init__(self, model_text: str, num_iteration: int = 0) -> None:
        lib = library()
        self._lib = lib
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_text.encode("utf-8")),
                ctypes.byref(iterations),
                ctypes.byref(self._handle),
            )
        )
        features = ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(features)))
        classes = ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(classes)))
        self.num_features = int(features.value)
        self.num_classes = int(classes.value)
        self.num_iteration = int(num_iteration)
        self._fast: dict[int, ctypes.c_void_p] = {}
        self._fast_lock = threading.Lock()
        self._out_len = ctypes.c_int64(0)

    def _params(self, threads: int) -> ctypes.c_char_p:
        return ctypes.c_char_p(f"num_threads={threads}".encode())

    def predict(self, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Predictions for a float32 matrix (rows x features), as ``Booster.predict``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise LightGBMError(
                f"expected a matrix of {self.num_features} features, got shape {x.shape}"
            )
        rows = x.shape[0]
        out = np.empty(rows * self.num_classes, dtype=np.float64)
        if rows == 0:
            return out
        if rows == 1:
            return self._one(x, num_threads, out)
        out_len = ctypes.c_int64(0)
        _check(
            self._lib.LGBM_BoosterPredictForMat(
                self._handle,
                x.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_DTYPE_FLOAT32),
                ctypes.c_int32(rows),
                ctypes.c_int32(x.shape[1]),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(self.num_iteration),
                self._params(num_threads),
                ctypes.byref(out_len),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        return out

    def _one(self, x: np.ndarray, threads: int, out: np.ndarray) -> np.ndarray:
        with self._fast_lock:
            config = self._fast.get(threads)
            if config is None:
                config = ctypes.c_void_p()
                _check(
                    self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                        self._handle,
                        ctypes.c_int(_PREDICT_NORMAL),
                        ctypes.c_int(0),
                        ctypes.c_int(self.num_iteration),
                        ctypes.c_int(_DTYPE_FLOAT32),
                        ctypes.c_int32(self.num_features),
                        self._params(threads),
                        ctypes.byref(config),
                    )
                )
                self._fast[threads] = config
            _check(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    config,
                    x.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._out_len),
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
        return out

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        for config in getattr(self, "_fast", {}).values():
            lib.LGBM_FastConfigFree(config)
        if getattr(self, "_handle", None):
            lib.LGBM_BoosterFree(self._handle)
