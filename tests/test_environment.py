"""The environments that install the kit stay in step and really install.

Binder builds from binder/ with conda, which cannot be reached from here;
the closest stand-in is to install every pinned package with pip into a
fresh virtual environment, run binder/postBuild, and run the lessons there.
"""

from __future__ import annotations

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
from packaging.version import Version

pytestmark = pytest.mark.e2e


ROOT = Path(__file__).parent.parent

# conda-forge names that differ from PyPI's (none yet), and conda-only ones
PYPI_NAMES: dict[str, str] = {}
NOT_ON_PYPI = {"python", "pip"}


def pins() -> dict[str, str]:
    """name → pinned version, from environment.yml's dependencies."""
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.fullmatch(r"\s*-\s*([A-Za-z0-9_.-]+)(?:=([0-9.]+))?\s*", line)
        if match:
            found[match[1]] = match[2] or ""
    return found


def test_binder_environment_is_the_top_level_one():
    assert (ROOT / "binder" / "environment.yml").read_text() == \
        (ROOT / "environment.yml").read_text()


def test_every_package_is_pinned_and_the_pins_fit_pyproject():
    pinned = pins()
    assert {"python", "jupyterlab", "ipywidgets", "python-socketio", "aiohttp", "nbval",
            "jupyter-server-proxy"} <= set(pinned)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    requirements += [Requirement(text) for extra in project["optional-dependencies"].values()
                     for text in extra if not text.startswith("chatlab")]
    for name, version in pinned.items():
        if name == "pip":
            continue
        assert re.fullmatch(r"\d+\.\d+", version), f"{name} needs a minor-version pin"
        for requirement in requirements:
            if requirement.name == name:
                assert requirement.specifier.contains(Version(version + ".0"), prereleases=False) \
                    or requirement.specifier.contains(Version(version)), (name, version, requirement)
    assert Version(pinned["python"]) >= Version(project["requires-python"].lstrip(">="))


def test_the_pins_install_with_pip_post_build_succeeds_and_the_lessons_run(tmp_path):
    pinned = pins()
    if f"{sys.version_info.major}.{sys.version_info.minor}" != pinned["python"]:
        pytest.skip(f"environment.yml pins python {pinned['python']}; this is {sys.version}")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    packages = [f"{PYPI_NAMES.get(name, name)}=={version}.*"
                for name, version in pinned.items() if name not in NOT_ON_PYPI]
    run([python, "-m", "pip", "install", "--quiet", *packages])

    # binder/postBuild runs in a copy of the repository, with the new
    # environment first on PATH, as Binder runs it.
    repo = tmp_path / "repo"
    for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.splitlines():
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    environ = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    environ.pop("VIRTUAL_ENV", None)
    run(["bash", repo / "binder" / "postBuild"], cwd=repo, env=environ)

    located = run([python, "-c", "import chatlab; print(chatlab.__file__)"], cwd=tmp_path,
                  env=environ)
    assert located.startswith(str(repo)), located
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
    expected = {str(path.relative_to(ROOT)) for path in (ROOT / "chatlab").rglob("*")
                if path.is_file() and "__pycache__" not in path.parts}
    assert expected <= names, expected - names
