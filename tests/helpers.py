"""Small synthetic systems for tests that must not depend on the fixture corpus."""

from __future__ import annotations

import numpy as np

from dpconv import LabeledSystem, System


def water_like(nframes: int = 4, seed: int = 0, labeled: bool = True, virials: bool = True) -> System:
    """A periodic 2 O + 4 H system with random (but reproducible) data."""
    rng = np.random.default_rng(seed)
    data = {
        "atom_names": ["O", "H"],
        "atom_numbs": [2, 4],
        "atom_types": np.array([0, 1, 1, 0, 1, 1]),
        "cells": np.tile(np.diag([5.0, 6.0, 7.0]), (nframes, 1, 1)) + rng.normal(0, 0.1, (nframes, 3, 3)),
        "coords": rng.uniform(0, 5, (nframes, 6, 3)),
    }
    if labeled:
        data["energies"] = rng.normal(-100, 1, nframes)
        data["forces"] = rng.normal(0, 1, (nframes, 6, 3))
        if virials:
            data["virials"] = rng.normal(0, 1, (nframes, 3, 3))
        return LabeledSystem(data=data)
    return System(data=data)


def methane(nframes: int = 3, seed: int = 1) -> LabeledSystem:
    rng = np.random.default_rng(seed)
    return LabeledSystem(
        data={
            "atom_names": ["H", "C"],
            "atom_numbs": [4, 1],
            "atom_types": np.array([1, 0, 0, 0, 0]),
            "cells": np.tile(np.eye(3) * 10.0, (nframes, 1, 1)),
            "coords": rng.uniform(0, 10, (nframes, 5, 3)),
            "energies": rng.normal(-20, 1, nframes),
            "forces": rng.normal(0, 1, (nframes, 5, 3)),
        }
    )
