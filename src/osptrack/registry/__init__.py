"""The package registries as services of the fake network.

Inside the sandbox pip, npm, gem, Composer and cargo are configured, through their own settings
(`PIP_INDEX_URL`, a project `.npmrc`, `gem --source`, a `composer` repository, cargo's source
replacement), to use a registry at `REGISTRY_HOST` (a fake-network address). No proxy
variable is set for anyone, so every other connection reaches the fake network as usual.

- `local.py`    distributions in the `--deps-dir` folders (metadata read from the archives)
- `cache.py`    the host-side content-addressed cache, shared by runs and batch workers
- `upstream.py` online mode: the real registry, fetched on the host as plain bytes, hash-checked
- `pypi.py`     PyPI's simple API (PEP 503 HTML, PEP 691 JSON)
- `npm.py`      npm's registry API (packuments, tarballs)
- `flavour.py`  the small interface of the later ones, one module each:
  `rubygems.py` (a gem source; `rubymarshal.py`), `packagist.py` (a Composer repository),
  `cratesio.py` (cargo's sparse index). NuGet 2.8.7 speaks only v2 OData: not served.
- `service.py`  the HTTP service that the fake network hands the registry's connections to
"""

from __future__ import annotations

# The registry's place in the fake network: an infrastructure address (198.18.0.0/24 is never
# handed out as a sinkhole) and the name the fake DNS answers with it.
REGISTRY_HOST = "pkgmirror.internal.lan"
REGISTRY_ADDRESS = ("198.18.0.80", 80)
REGISTRY_URL = f"http://{REGISTRY_HOST}"
PYPI_INDEX_URL = f"{REGISTRY_URL}/pypi/simple/"
NPM_REGISTRY_URL = f"{REGISTRY_URL}/npm/"
