"""sympy, imported at its first use: the runtime reaches ops' reference functions through modules
that also hold symbolic shape rules, and must not load sympy (1 s) to run an engine."""
from __future__ import annotations

import importlib
import types


class _LazyModule(types.ModuleType):
    """A module stand-in that imports the real module at the first attribute lookup."""

    def __getattr__(self, name):
        mod = importlib.import_module(self.__name__)
        self.__dict__.update(mod.__dict__)  # later lookups are plain attribute reads
        return getattr(mod, name)


sympy = _LazyModule("sympy")
