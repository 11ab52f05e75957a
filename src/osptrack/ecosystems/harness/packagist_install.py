"""composer install of one package in a fresh project (runs inside the sandbox).

Usage: packagist_install.py offline|online PROJECT NAME VERSION [ARCHIVE] [--deps DIR...]

The archive becomes an inline `package` repository whose dist is the local zip (so a zipball
without a `version` in its composer.json installs too); its dependencies come from the registry
service's Composer repository ($OSPTRACK_COMPOSER_REPO: the --deps-dir zips, the host's cache,
and with --online what osptrack fetched on the host); packagist.org is disabled. Zips in
--deps DIR folders (none when the service serves them) are inline packages too. Plugins and scripts are allowed, as in
real projects: a composer plugin's activate() is the Packagist install-time attack path.
"""

import json
import os
import re
import sys
import zipfile

import _install_args  # sibling module: the harness folder is this script's sys.path[0]

MAX_JSON = 4 << 20


def package_json(archive):
    """The package's own composer.json, from the zip root or its single top folder."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.endswith("composer.json") and n.strip("/").count("/") <= 1]
        names.sort(key=lambda n: n.count("/"))
        if not names:
            sys.exit(f"osptrack-install: {archive}: no composer.json")
        info = zf.getinfo(names[0])
        if info.file_size > MAX_JSON:
            sys.exit("osptrack-install: composer.json too large")
        return json.loads(zf.read(info))


def inline_package(archive, name=None, version=None):
    """A `package` repository entry whose dist is the local zip itself."""
    package = package_json(archive)
    if name:
        package["name"] = name
    version = version or package.get("version")
    if not version:
        match = re.search(r"-v?(\d[\w.+-]*)\.zip$", os.path.basename(archive))
        if match is None:
            return None
        version = match.group(1)
    package["version"] = version
    package["dist"] = {"type": "zip", "url": archive}
    package.pop("source", None)
    return {"type": "package", "package": package}


def dependency_repositories(folder, archive):
    """Each zip of a --deps-dir as an inline package. (An `artifact` repository would do the
    same but needs PHP's zip extension, and cannot take zipballs that lack a version.)"""
    repos = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not entry.endswith(".zip") or (archive and os.path.basename(archive) == entry):
            continue
        try:
            repo = inline_package(path)
        except (SystemExit, ValueError, zipfile.BadZipFile, OSError) as exc:
            print(f"osptrack-install: skipping {path}: {exc}", file=sys.stderr)
            continue
        if repo is not None:
            repos.append(repo)
    return repos


def main():
    _mode, (project,), name, version, archive, deps = _install_args.parse(n_extra=1)
    repositories = []
    if archive:
        repositories.append(inline_package(archive, name, version))
    for folder in deps:
        repositories += dependency_repositories(folder, archive)
    if os.environ.get("OSPTRACK_COMPOSER_REPO"):
        repositories.append({"type": "composer", "url": os.environ["OSPTRACK_COMPOSER_REPO"]})
    repositories.append({"packagist.org": False})  # the sandbox never reaches it
    manifest = {
        "name": "osptrack/sandbox-project",
        "description": "osptrack sandbox project",
        "type": "project",
        "repositories": repositories,
        "require": {name: version},
        "minimum-stability": "dev",
        "prefer-stable": True,
        # secure-http: the registry service is plain http inside the fake network
        "config": {"allow-plugins": True, "process-timeout": 0, "secure-http": False},
    }
    os.makedirs(project, exist_ok=True)
    with open(os.path.join(project, "composer.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
    os.chdir(project)
    argv = ["composer", "install", "--no-interaction", "--no-progress", "--prefer-dist"]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
