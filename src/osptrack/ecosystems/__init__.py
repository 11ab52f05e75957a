"""One module per ecosystem; `get()` is the registry the rest of the code uses."""

from __future__ import annotations

from osptrack.ecosystems.base import Ecosystem
from osptrack.errors import BadInput
from osptrack.target import normalise_ecosystem


def _all() -> dict[str, Ecosystem]:
    from osptrack.ecosystems.cratesio import CratesIo
    from osptrack.ecosystems.npm import Npm
    from osptrack.ecosystems.nuget import NuGet
    from osptrack.ecosystems.packagist import Packagist
    from osptrack.ecosystems.pypi import PyPI
    from osptrack.ecosystems.rubygems import RubyGems

    return {eco.name: eco for eco in (PyPI(), Npm(), RubyGems(), Packagist(), CratesIo(), NuGet())}


def get(name: str) -> Ecosystem:
    eco = normalise_ecosystem(name)
    found = _all().get(eco)
    if found is None:
        raise BadInput(f"ecosystem {eco!r} is not supported yet")
    return found


def supported() -> list[str]:
    return list(_all())
