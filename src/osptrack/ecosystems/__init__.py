"""One module per ecosystem; `get()` is the registry the rest of the code uses."""

from __future__ import annotations

import importlib

from osptrack.ecosystems.base import Ecosystem
from osptrack.errors import BadInput
from osptrack.target import normalise_ecosystem

# name -> (module, class). `get` imports only the one asked for: the others pull yaml, xml,
# urllib.request and semantic_version, none of which a PyPI run needs (about 30 ms).
MODULES = {
    "pypi": ("osptrack.ecosystems.pypi", "PyPI"),
    "npm": ("osptrack.ecosystems.npm", "Npm"),
    "rubygems": ("osptrack.ecosystems.rubygems", "RubyGems"),
    "packagist": ("osptrack.ecosystems.packagist", "Packagist"),
    "crates.io": ("osptrack.ecosystems.cratesio", "CratesIo"),
    "nuget": ("osptrack.ecosystems.nuget", "NuGet"),
}


def _load(name: str) -> Ecosystem:
    module, cls = MODULES[name]
    eco: Ecosystem = getattr(importlib.import_module(module), cls)()
    return eco


def _all() -> dict[str, Ecosystem]:
    return {name: _load(name) for name in MODULES}


def get(name: str) -> Ecosystem:
    eco = normalise_ecosystem(name)
    if eco not in MODULES:
        raise BadInput(f"ecosystem {eco!r} is not supported yet")
    return _load(eco)


def supported() -> list[str]:
    return list(_all())
