"""The environments that install the kit stay in step."""

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_binder_environment_is_the_top_level_one():
    assert (ROOT / "binder" / "environment.yml").read_text() == \
        (ROOT / "environment.yml").read_text()


def test_binder_post_build_installs_the_kit_and_stops_on_errors():
    script = (ROOT / "binder" / "postBuild").read_text()
    assert "set -e" in script and "pip install" in script
