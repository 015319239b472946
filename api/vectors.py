"""Small vector helpers for lists built from several tracks (unit vectors of the searched space)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Below this length a sum of unit vectors has no direction worth searching for (the parts cancel out).
MIN_NORM = 1e-6


def unit(vector: npt.ArrayLike) -> npt.NDArray[np.float32] | None:
    """``vector`` scaled to length 1, or None when it has (almost) no length."""
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return None if norm < MIN_NORM else (v / norm).astype(np.float32)


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """The cosine similarity of two unit vectors."""
    return float(np.dot(a, b))


def slerp(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], t: float) -> npt.NDArray[np.float32]:
    """The point a fraction ``t`` along the great circle from unit vector ``a`` to unit vector ``b``."""
    omega = float(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)))
    sin_omega = float(np.sin(omega))
    if sin_omega < MIN_NORM:
        # Equal ends: the circle is a point. Opposite ends: every great circle joins them, and the
        # normalised straight line picks one (its midpoint has no direction, so `a` stands in for it).
        straight = unit((1.0 - t) * a + t * b)
        return a if straight is None else straight
    point = (np.sin((1.0 - t) * omega) / sin_omega) * a + (np.sin(t * omega) / sin_omega) * b
    return point.astype(np.float32)
