"""The released package: ``python -m build`` makes an sdist and a wheel that pass ``twine check``,
hold what they should, and the wheel installed in a fresh venv runs ``ntknas`` outside the checkout.

The fresh venv gets the wheel alone (``--no-deps --no-index``: nothing of the checkout, no network);
its dependencies (torch and the rest, hundreds of MB: reinstalling them would take minutes) are then
made visible through a ``.pth`` line naming the site-packages the tests' own interpreter imports them
from, added after the install so pip never sees an ``ntknas`` there. The checkout's own ``ntknas`` (an editable install in ``.venv``) is not on
that path: an editable install is reached through ``.pth`` files, which a plain path line does not run.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ntknas.version import __version__

pytest.importorskip("build")  # the dev extra installs build and twine; without them nothing here can run

REPO = Path(__file__).resolve().parents[1]
NAME = f"ntknas-{__version__}"
# What `ntknas demo` imports from outside the package: the dependencies and the demo extra.
DEPENDENCY_MODULES = ("torch", "numpy", "scipy", "matplotlib", "tqdm", "sklearn")


def _site_of(module: str) -> str:
    """The folder the running interpreter imports ``module`` from (its site-packages)."""
    return str(Path(importlib.import_module(module).__file__ or "").resolve().parents[1])


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from this checkout; offline (no isolated build env to download)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)], cwd=out)
    return out


def test_sdist_and_wheel_pass_twine_check_and_hold_what_they_should(dist: Path) -> None:
    sdist, wheel = dist / f"{NAME}.tar.gz", dist / f"{NAME}-py3-none-any.whl"
    _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], cwd=dist)
    with zipfile.ZipFile(wheel) as archive:
        wheel_files = set(archive.namelist())
        metadata = archive.read(f"{NAME}.dist-info/METADATA").decode()
        entry_points = archive.read(f"{NAME}.dist-info/entry_points.txt").decode()
    assert {"ntknas/__init__.py", "ntknas/__main__.py", "ntknas/py.typed", "ntknas/cli.py",
            f"{NAME}.dist-info/licenses/LICENSE"} <= wheel_files
    assert not [f for f in wheel_files if f.startswith(("tests/", "docs/")) or "__pycache__" in f]
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert f"Version: {__version__}" in metadata and "Description-Content-Type: text/markdown" in metadata
    assert "ntknas = ntknas.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        sdist_files = {name.removeprefix(f"{NAME}/") for name in archive.getnames()}
    # A user can test from the sdist: the whole suite with its helpers, and the manual it checks.
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "ntknas/py.typed", "ntknas/__main__.py",
            "tests/conftest.py", "tests/real_data.py", "tests/fixtures_data.py", "mkdocs.yml"} <= sdist_files
    assert not [f for f in sdist_files if "__pycache__" in f or f.endswith(".pyc")]


@pytest.mark.slow
def test_the_wheel_installed_in_a_clean_venv_runs_outside_the_checkout(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    wheel = dist / f"{NAME}-py3-none-any.whl"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], cwd=tmp_path)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    dependencies = {_site_of(module) for module in DEPENDENCY_MODULES}
    (site / "test_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(dependencies)))

    work = tmp_path / "elsewhere"  # not the checkout: nothing there can be imported by accident
    work.mkdir()
    where = _run([str(python), "-c", "import ntknas; print(ntknas.__file__)"], cwd=work).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    assert _run([str(venv / "bin" / "ntknas"), "--version"], cwd=work).stdout.strip() == f"ntknas {__version__}"
    assert _run([str(python), "-m", "ntknas", "--version"], cwd=work).stdout.strip() == f"ntknas {__version__}"

    demo = _run([str(venv / "bin" / "ntknas"), "demo", "--archs", "3", "--epochs", "1", "--out", "demo"], cwd=work)
    assert "Miniature search among the 3 measured cells" in demo.stdout
    assert {"summary.md", "summary.json", "demo_groundtruth.json"} <= {p.name for p in (work / "demo").iterdir()}
    assert (work / "demo" / "search" / "summary.json").is_file()
