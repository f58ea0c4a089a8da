"""Site configuration: valid files load; every error names file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ConfigError, SiteConfig, UnknownCameraError

SITES = Path(__file__).resolve().parent.parent / "engine" / "sites"


@pytest.mark.parametrize("name", ["vtest.toml", "market.toml"])
def test_bundled_sites_load(name: str) -> None:
    cfg = SiteConfig.from_toml(SITES / name)
    assert cfg.cameras
    assert cfg.source.endswith(name)


@pytest.mark.parametrize(
    ("toml", "key", "expect"),
    [
        ("[cameras.c1]\nfps = -1\n", "cameras.c1.fps", "greater than 0"),
        ("[cameras.c1]\nfpz = 3\n", "cameras.c1.fpz", "Extra inputs"),
        (
            "[cameras.c1.homography]\nimage=[[0,0],[1,0],[1,1]]\nworld=[[0,0],[1,0],[1,1]]\n",
            "cameras.c1.homography.image",
            "at least 4",
        ),
        (
            "[[cameras.c1.lines]]\nid='l'\na=[1,1]\nb=[1,1]\n",
            "cameras.c1.lines.0",
            "identical",
        ),
        (
            "[[cameras.c1.lines]]\nid='l'\na=[0,0]\nb=[1,1]\n[[cameras.c1.lines]]\nid='l'\na=[0,0]\nb=[2,1]\n",
            "cameras.c1.lines",
            "duplicate",
        ),
        ("[detector]\nconf_threshold = 2\n", "detector.conf_threshold", "less than or equal"),
        ("[detector]\nkind = 'yolov99'\n", "detector.kind", "yolov8"),
        ("cameras = 3\n", "cameras", "dictionary"),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, toml: str, key: str, expect: str
) -> None:
    p = tmp_path / "site.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as ei:
        SiteConfig.from_toml(p)
    e = ei.value
    assert e.file == str(p)
    assert e.key == key
    assert expect in str(e)
    assert str(p) in str(e) and key in str(e)


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[cameras\n")
    with pytest.raises(ConfigError, match="valid TOML") as ei:
        SiteConfig.from_toml(p)
    assert ei.value.file == str(p)
    with pytest.raises(ConfigError, match="existing TOML file"):
        SiteConfig.from_toml(tmp_path / "nope.toml")


def test_unknown_camera_names_the_config() -> None:
    cfg = SiteConfig.from_toml(SITES / "vtest.toml")
    with pytest.raises(UnknownCameraError, match="'nope'.*vtest.toml"):
        cfg.camera("nope")
