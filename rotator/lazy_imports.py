"""Keeping ``rotator mint`` fast: defer imports the mint path never uses.

PyJWT's package imports ``cryptography.x509`` (about a fifth of ``mint``'s
start-up) although signing with a key object never touches it. Registering it
with the standard library's :class:`importlib.util.LazyLoader` defers its
execution to the first attribute access, which on the mint path never comes;
any later use loads it transparently.
"""

from __future__ import annotations

import importlib.util
import sys

DEFERRED = ("cryptography.x509",)


def defer_unused_imports(names: tuple[str, ...] = DEFERRED) -> None:
    """Register ``names`` as lazily loaded modules (no-op for ones already imported)."""
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
