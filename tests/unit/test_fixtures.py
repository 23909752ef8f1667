"""tests/fixtures/: the repo's own test data, each file's origin named in its folder's SOURCES.md."""

from __future__ import annotations

from tests.conftest import FIXTURES_DIR


def test_every_fixture_has_a_source() -> None:
    folders = sorted(p for p in FIXTURES_DIR.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["cloudfoundry", "docker", "kubernetes", "mesos", "ovn-trace"]
    for folder in folders:
        sources = (folder / "SOURCES.md").read_text()
        files = [p.name for p in folder.iterdir() if p.name != "SOURCES.md"]
        assert files, folder
        assert [f for f in files if f not in sources] == [], f"{folder}/SOURCES.md does not name these"

