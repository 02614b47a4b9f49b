"""The environments that install the kit stay in step and really install.

One list of pins, requirements/pins.txt: the exact versions, as tested, of
every package chatlab and its extras name. The test venv is installed with
it as constraints (the Makefile), and so is Binder (binder/postBuild), whose
conda environment gives only what PyPI does not: Python, Node.js and pip.

Binder builds with conda, which cannot be reached from here; the closest
stand-in is a fresh virtual environment at the pinned Python, where
binder/postBuild installs everything else, and the lessons run there.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.e2e


ROOT = Path(__file__).parent.parent
PINS = ROOT / "requirements" / "pins.txt"
# What conda installs: only what is not on PyPI.
CONDA_ONLY = {"python", "nodejs", "pip", "redis-server"}
CLIENT = Path("chatlab/web/vendor/node_modules/socket.io-client/dist/socket.io.min.js")


def conda_dependencies() -> dict[str, str]:
    """name → version, from environment.yml's dependencies; a ``pip:``
    section shows as "pip:"."""
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.fullmatch(r"\s*-\s*([A-Za-z0-9_.-]+:?)(?:=([0-9.]+))?\s*", line)
        if match:
            found[match[1]] = match[2] or ""
    return found


def pins() -> list[Requirement]:
    """requirements/pins.txt, one requirement a line."""
    lines = (line.split("#", 1)[0].strip() for line in PINS.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def pinned_version(requirement: Requirement) -> str:
    [specifier] = requirement.specifier
    assert specifier.operator == "==" and "*" not in specifier.version, requirement
    return specifier.version


def project_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and those of every extra, but chatlab itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    texts += [text for extra in project["optional-dependencies"].values() for text in extra]
    return [Requirement(text) for text in texts if Requirement(text).name != "chatlab"]


def test_binder_environment_is_the_top_level_one():
    assert (ROOT / "binder" / "environment.yml").read_text() == \
        (ROOT / "environment.yml").read_text()


def test_conda_gives_only_what_pypi_does_not():
    dependencies = conda_dependencies()
    # No Python package from conda-forge, whose versions may lag PyPI's,
    # and no pip: section (its paths would differ between the two files).
    assert set(dependencies) == CONDA_ONLY, dependencies
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = dependencies["python"]
    assert re.fullmatch(r"3\.\d+", python)
    assert Version(python) >= Version(project["requires-python"].lstrip(">="))
    assert re.fullmatch(r"\d+", dependencies["nodejs"])


def test_the_pins_are_exact_and_name_every_package_pyproject_names():
    pinned = {canonicalize_name(requirement.name): requirement for requirement in pins()}
    named = {canonicalize_name(requirement.name): requirement
             for requirement in project_requirements()}
    assert set(pinned) == set(named), (set(pinned) ^ set(named))
    for name, requirement in pinned.items():
        version = Version(pinned_version(requirement))
        assert named[name].specifier.contains(version), (requirement, named[name])
        assert requirement.marker == named[name].marker, (requirement, named[name])


def test_the_test_environment_is_the_pinned_set():
    wrong = {}
    for requirement in pins():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pinned_version(requirement):
            wrong[requirement.name] = (installed, pinned_version(requirement))
    assert not wrong, f"installed, pinned: {wrong}; run `make install-test`"


def test_every_install_of_the_kit_uses_the_pins():
    # What the Makefile would run for .venv, as if nothing were installed.
    commands = run(["make", "--no-print-directory", "-n", "-B", "install", "install-test"],
                   cwd=ROOT).splitlines()
    installs = [line for line in commands if "pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 2
    for line in installs:
        assert "-c requirements/pins.txt -e" in line, line
    assert any("npm ci --prefix chatlab/web/vendor" in line for line in commands)
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "set -euo pipefail" in post_build
    assert "pip install --no-cache-dir -c requirements/pins.txt -e '.[lab]'" in post_build
    assert "npm ci --prefix chatlab/web/vendor" in post_build


def repository_files() -> list[str]:
    """The repository's own files: tracked, or new and not ignored."""
    return subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()


def test_post_build_installs_the_pins_and_the_client_and_the_lessons_run(tmp_path):
    python_version = conda_dependencies()["python"]
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python_version:
        pytest.skip(f"environment.yml pins python {python_version}; this is {sys.version}")
    if shutil.which("npm") is None:
        pytest.skip("environment.yml gives Node.js; here there is no npm")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"

    # binder/postBuild runs in a copy of the repository, with the new
    # environment first on PATH, as Binder runs it.
    repo = tmp_path / "repo"
    for name in repository_files():
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    environ = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    environ.pop("VIRTUAL_ENV", None)
    run(["bash", repo / "binder" / "postBuild"], cwd=repo, env=environ)

    located = run([python, "-c", "import chatlab; print(chatlab.__file__)"], cwd=tmp_path,
                  env=environ)
    assert located.startswith(str(repo)), located
    # Every pinned package that Binder has is at the pinned version: the
    # versions the tests ran with.
    listed = run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path, env=environ)
    versions = {canonicalize_name(name): version for name, version in
                (line.split("==", 1) for line in listed.splitlines() if "==" in line)}
    for requirement in pins():
        name = canonicalize_name(requirement.name)
        if name in versions:
            assert versions[name] == pinned_version(requirement), requirement
    assert {"jupyterlab", "python-socketio", "aiohttp", "nbval"} <= set(versions)
    # The chat page's client, served by the chat server: the pinned file.
    assert (repo / CLIENT).read_bytes() == (ROOT / CLIENT).read_bytes()

    notebooks = sorted(str(path) for path in (repo / "notebooks").glob("*.ipynb"))
    assert notebooks
    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", *notebooks,
         "--nbval-sanitize-with", repo / "tests" / "nbval-sanitize.cfg"], cwd=repo, env=environ)


def run(command: list, **options) -> str:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                            timeout=600, **options)
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_the_readme_badge_opens_the_first_lesson_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\]\((https://mybinder\.org/v2/gh/[^)]+)\)", readme)
    assert badge, "no Binder badge in the README"
    assert badge[1].endswith("?urlpath=lab/tree/notebooks/00-start-here.ipynb")
    assert (ROOT / "notebooks" / "00-start-here.ipynb").is_file()


def test_the_wheel_carries_every_module_the_page_and_the_checks(tmp_path):
    import zipfile
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "-w", tmp_path, ROOT])
    [wheel] = tmp_path.glob("chatlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # The package's own files; not chatlab/web/vendor, the npm pins of the
    # set-up (a wheel's chat page loads the client from the CDN).
    expected = {name for name in repository_files() if name.startswith("chatlab/")
                and not name.startswith("chatlab/web/vendor/")}
    assert expected <= names, expected - names
    assert not [name for name in names if "node_modules" in name or "/vendor/" in name]
