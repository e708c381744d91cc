"""Wheels for the GPU check on a machine without internet, and the one command that installs them and runs it.

The GPU machine has its own Python (3.12) with a CUDA torch already installed (2.11 at last look) and no internet.
Everything else the check imports comes as wheels prepared beforehand on a machine with the registries; torch is
never downloaded, installed or replaced.

1. On a machine with the registries (any OS, any Python ≥ 3.10 with pip; the wheels are for the GPU machine)::

       python benchmarks/device_wheels.py prepare                  # -> wheels/ (+ wheels/requirements.txt)
       python benchmarks/device_wheels.py prepare --python-version 3.12 --platform manylinux_2_28_x86_64 \
           --dir wheels --all                                      # every runtime dependency, not only the check's

   ``prepare`` resolves the dependency closure of the check's requirements (their ranges from ``pyproject.toml``:
   tensordict, numpy, scipy, gymnasium; ``--all``: every runtime dependency) one package at a time with
   ``pip download --no-deps --only-binary=:all: --python-version … --platform … --implementation cp --abi cp312``
   (an sdist-only package is built into a wheel with ``pip wheel --no-deps``), skipping torch and its CUDA
   packages (``nvidia-*``, ``triton``), and reading each wheel's ``Requires-Dist`` with the GPU machine's markers.
   Each package is pinned to the version installed where ``prepare`` runs when that one satisfies the range (run it
   from the project's ``.venv``: the versions its tests ran with; ``--latest``: the newest in range).

2. Copy the repository with ``wheels/`` to the GPU machine; there, ONE command (at most 8 minutes)::

       python3 benchmarks/device_wheels.py check                   # = install, then device_check.py --device cuda

   ``install`` runs ``python -m pip install --no-index --no-deps --target wheels/site wheels/*.whl``: nothing
   outside ``wheels/site`` changes (no virtual environment, no PEP 668 complaint, the preinstalled torch
   untouched); ``check`` then runs ``benchmarks/device_check.py`` (extra arguments are passed on) with
   ``PYTHONPATH=wheels/site:<repository>``. ``install`` / ``run`` do each half alone.

``--dir`` (default ``wheels`` at the repository root) must be the same for all three. Nothing here is imported by
the library or the tests, except :func:`requirements` / :func:`closure_markers` (checked in the smoke tests).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the distributions the check imports besides torch (through hetagents_env, agents and the benchmark modules)
CHECK_NEEDS = ("tensordict", "numpy", "scipy", "gymnasium")
#: never downloaded: the GPU machine's own torch and what comes with a CUDA torch
EXCLUDE = re.compile(r"^(torch|triton|nvidia-.*|pytorch-triton.*)$")


def _packaging():
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:  # pip vendors it
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
        from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    return Requirement, canonicalize_name


def requirements(all_runtime: bool = False) -> list[str]:
    """The project's runtime requirements from ``pyproject.toml`` (without torch): the check's (``CHECK_NEEDS``)
    or, with ``all_runtime``, every one."""
    Requirement, canonicalize_name = _packaging()
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    if block is None:
        raise SystemExit("pyproject.toml: no [project] dependencies list")
    reqs = re.findall(r'"([^"]+)"', block.group(1))
    keep = []
    for line in reqs:
        name = canonicalize_name(Requirement(line).name)
        if EXCLUDE.match(name):
            continue
        if all_runtime or name in CHECK_NEEDS:
            keep.append(line)
    return keep


def closure_markers(python_version: str, platform_machine: str = "x86_64") -> dict[str, str]:
    """The marker environment of the GPU machine (Linux, CPython ``python_version``)."""
    return {"python_version": python_version, "python_full_version": f"{python_version}.0",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "platform_machine": platform_machine, "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def _wheel_requires(path: Path) -> tuple[str, str, list[str]]:
    """(name, version, Requires-Dist lines) of a wheel file."""
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    field = lambda key: re.findall(rf"^{key}: (.+)$", head, re.M)  # noqa: E731
    return field("Name")[0].strip(), field("Version")[0].strip(), [r.strip() for r in field("Requires-Dist")]


def _downloaded(folder: Path, name: str) -> Path | None:
    _, canonicalize_name = _packaging()
    for path in folder.glob("*.whl"):
        if canonicalize_name(path.name.split("-")[0]) == name:
            return path
    return None


def _installed_version(req) -> str | None:
    """The version of ``req``'s distribution installed in this environment, if it satisfies ``req``."""
    from importlib import metadata

    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return None
    return version if not req.specifier or version in req.specifier else None


def prepare(args) -> int:
    Requirement, canonicalize_name = _packaging()
    folder = Path(args.dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():  # binaries: never committed by accident
        ignore.write_text("# written by benchmarks/device_wheels.py: wheels are prepared, not committed\n*\n")
    tags = ["--python-version", args.python_version, "--implementation", "cp",
            "--abi", f"cp{args.python_version.replace('.', '')}"]
    for plat in args.platform:
        tags += ["--platform", plat]
    markers = closure_markers(args.python_version, args.machine)
    top = requirements(args.all)
    queue = list(top)
    done: dict[str, str] = {}
    while queue:
        req = Requirement(queue.pop(0))
        name = canonicalize_name(req.name)
        if EXCLUDE.match(name) or (req.marker is not None and not req.marker.evaluate(markers)):
            continue
        if name in done:
            if req.specifier and done[name] not in req.specifier:
                print(f"warning: {name} {done[name]} does not satisfy {req} (kept the first one resolved)")
            continue
        spec = f"{req.name}{req.specifier}"
        pinned = _installed_version(req) if args.pin_installed else None
        if pinned is not None:
            spec = f"{req.name}=={pinned}"  # the version tested here
        have = _downloaded(folder, name)
        if have is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *tags, "-d",
                   str(folder), spec]
            print("$", " ".join(cmd), flush=True)
            ok = subprocess.run(cmd).returncode == 0
            if not ok and pinned is not None:  # no wheel of the pinned version for that Python: the range
                spec = cmd[-1] = f"{req.name}{req.specifier}"
                print("$", " ".join(cmd), flush=True)
                ok = subprocess.run(cmd).returncode == 0
            if not ok:  # no binary wheel at all: build one (pure-python sdists)
                cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(folder), spec]
                print("$", " ".join(cmd), flush=True)
                if subprocess.run(cmd).returncode != 0:
                    print(f"error: could not get a wheel of {spec}", file=sys.stderr)
                    return 1
            have = _downloaded(folder, name)
            if have is None:
                print(f"error: pip reported success but no wheel of {name} is in {folder}", file=sys.stderr)
                return 1
        _, version, requires = _wheel_requires(have)
        done[name] = version
        queue.extend(requires)
    (folder / "requirements.txt").write_text("\n".join(top) + "\n")
    print(f"{len(done)} wheel(s) in {folder}: " + ", ".join(f"{k}=={v}" for k, v in sorted(done.items())))
    print(f"next, on the GPU machine: python3 benchmarks/device_wheels.py check --dir {args.dir}")
    return 0


def site_dir(args) -> Path:
    return Path(args.dir).resolve() / "site"


def install(args) -> int:
    folder = Path(args.dir).resolve()
    wheels = sorted(str(p) for p in folder.glob("*.whl"))
    if not wheels:
        print(f"error: no wheels in {folder}: run `python benchmarks/device_wheels.py prepare` on a machine with "
              "the registries first", file=sys.stderr)
        return 2
    stamp = site_dir(args) / ".installed"
    if stamp.exists() and stamp.read_text().split("\n") == [Path(w).name for w in wheels]:
        print(f"already installed in {site_dir(args)}")
        return 0
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--upgrade", "--target",
           str(site_dir(args)), *wheels]
    print("$", " ".join(cmd), flush=True)
    code = subprocess.run(cmd).returncode
    if code == 0:
        stamp.write_text("\n".join(Path(w).name for w in wheels))
    return code


def run(args, extra: list[str]) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site_dir(args)), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    probe = [sys.executable, "-c", "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, "
             "'available', torch.cuda.is_available())"]
    subprocess.run(probe, env=env)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "device_check.py"), *extra]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["prepare", "install", "run", "check"])
    parser.add_argument("--dir", default=str(ROOT / "wheels"), help="the wheel folder (default: wheels/)")
    parser.add_argument("--python-version", default="3.12", help="prepare: the GPU machine's Python (default 3.12)")
    parser.add_argument("--platform", nargs="+",
                        default=["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
                        help="prepare: accepted wheel platforms of the GPU machine")
    parser.add_argument("--machine", default="x86_64", help="prepare: platform_machine for environment markers")
    parser.add_argument("--all", action="store_true", help="prepare: every runtime dependency, not only the check's")
    parser.add_argument("--latest", dest="pin_installed", action="store_false",
                        help="prepare: the newest versions in the project's ranges (default: the versions installed "
                             "where prepare runs, when they satisfy them: the versions the tests ran with)")
    args, extra = parser.parse_known_args(argv)
    if args.command == "prepare":
        return prepare(args)
    if args.command == "install":
        return install(args)
    if args.command == "run":
        return run(args, extra)
    code = install(args)
    return code if code else run(args, extra)


if __name__ == "__main__":
    sys.exit(main())
