"""`build` prepares local images for email: upright, no wider than twice their display width,
compressed, in formats Outlook shows; the editor's files stay as they were; work is cached."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageFile
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose import imaging
from newsletter.compose.build import IMAGE_CACHE, build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config

WriteIssue = Callable[..., Path]

FRONT = """\
subject: "Pictures"
preheader: "Photos from the week"
date: 2026-11-24
lead:
  title: "Pictures"
  image:
    src: images/hero.webp
    alt: "A wide photo"
teasers:
  - label: Next
    title: "Another story"
    summary: "A teaser with a transparent picture."
    url: "https://example.org/next"
    image: {src: images/badge.avif, alt: "A badge"}
"""

BODY = """\
A photo taken with the phone on its side:

![A tall photo](images/phone.jpg)

A small drawing: ![A drawing](images/small.png)
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pictures(write_issue: WriteIssue) -> Path:
    """An issue with a WebP hero, an AVIF with transparency, a sideways phone photo and a PNG."""
    folder = write_issue(FRONT, BODY, slug="pictures")
    images = folder / "images"
    Image.radial_gradient("L").resize((2400, 1200)).convert("RGB").save(images / "hero.webp")
    Image.new("RGBA", (1000, 1000), (200, 30, 30, 128)).save(images / "badge.avif")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    exif[0x010F] = "PhoneMaker"
    sideways = Image.linear_gradient("L").resize((3000, 2000)).convert("RGB")
    sideways.save(images / "phone.jpg", quality=98, exif=exif)
    Image.new("RGB", (300, 200), "teal").save(images / "small.png")
    return folder


def _build(folder: Path) -> dict[str, object]:
    config = load_config(folder.parent.parent / "newsletter.toml")
    built = build_issue(load_issue(folder), config)
    return {asset.src: asset for asset in built.assets}


def test_images_are_prepared_and_originals_untouched(pictures: Path) -> None:
    before = {path.name: _digest(path) for path in (pictures / "images").iterdir()}
    assets = _build(pictures)
    assert {path.name: _digest(path) for path in (pictures / "images").iterdir()} == before

    hero = assets["images/hero.webp"]  # shown 600 px wide: at most 1200 px, as JPEG
    assert hero.dest == "images/hero.jpg" and hero.url.endswith("/images/hero.jpg")
    assert (hero.width, hero.height) == (1200, 600)
    with Image.open(hero.file) as image:
        assert image.format == "JPEG" and image.size == (1200, 600)

    badge = assets["images/badge.avif"]  # transparency: PNG; a teaser is at most 432 px wide
    assert badge.dest == "images/badge.png"
    with Image.open(badge.file) as image:
        assert image.format == "PNG" and image.size == (864, 864) and image.mode == "RGBA"

    phone = assets["images/phone.jpg"]  # upright, at most 2 x 552 px, no EXIF left
    assert phone.dest == "images/phone.jpg"
    with Image.open(phone.file) as image:
        assert image.size == (1104, 1656)
        assert not image.getexif()
    assert any("upright" in change for change in phone.changes)
    assert phone.file.stat().st_size < (pictures / "images" / "phone.jpg").stat().st_size

    small = assets["images/small.png"]  # needs nothing: sent as it is
    assert small.file == pictures / "images" / "small.png" and small.changes == ()


def test_prepared_images_are_cached_between_builds(
    pictures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _build(pictures)
    cache = pictures.parent.parent / IMAGE_CACHE
    assert {path.parent for a in first.values() if a.changes for path in [a.file]} == {cache}

    def refuse(*args: object) -> tuple[bytes, str]:
        raise AssertionError("an image was encoded again")

    monkeypatch.setattr(imaging, "_encode", refuse)
    second = _build(pictures)
    assert {src: (a.file, a.width, a.height, a.dest) for src, a in second.items()} == {
        src: (a.file, a.width, a.height, a.dest) for src, a in first.items()
    }


def test_a_heavy_image_is_compressed_or_kept_if_that_does_not_help(
    write_issue: WriteIssue,
) -> None:
    folder = write_issue(body="![Noise](images/noise.png)\n\n![Flat](images/flat.png)\n")
    noise = Image.effect_noise((600, 600), 90).convert("RGB")
    noise.save(folder / "images" / "noise.png", optimize=True)  # as small as PNG gets
    assert (folder / "images" / "noise.png").stat().st_size > imaging.HEAVY_BYTES
    Image.new("RGB", (600, 600), "white").save(folder / "images" / "flat.png", compress_level=0)
    assert (folder / "images" / "flat.png").stat().st_size > imaging.HEAVY_BYTES
    assets = _build(folder)
    flat = assets["images/flat.png"]
    assert flat.changes[0] == "compressed" and flat.file.stat().st_size < 10_000
    noise_asset = assets["images/noise.png"]
    assert noise_asset.changes == () and noise_asset.file == folder / "images" / "noise.png"


def test_build_says_what_it_did_to_the_images(
    pictures: Path, runner: CliRunner, project: Path
) -> None:
    result = runner.invoke(app, ["build", str(pictures)])
    assert result.exit_code == 0, result.stderr
    assert "image for email: images/hero.webp: converted from WEBP" in result.stdout
    assert "Warning" not in result.stderr
    built = project / "build" / "pictures" / "images"
    assert sorted(path.name for path in built.iterdir() if path.is_file()) == [
        "badge.png",
        "hero.jpg",
        "phone.jpg",
        "small.png",
    ]
    data = json.loads(runner.invoke(app, ["build", str(pictures), "--json"]).stdout)
    assert len(data["images_prepared"]) == 3


def test_an_unreadable_image_is_an_input_error(write_issue: WriteIssue, runner: CliRunner) -> None:
    folder = write_issue(body="![A chart](images/chart.png)\n")
    (folder / "images" / "chart.png").write_bytes(b"not an image")
    result = runner.invoke(app, ["build", str(folder)])
    assert result.exit_code == 2
    assert "issue.md:8" in result.stderr and "chart.png" in result.stderr


def test_images_that_need_nothing_are_not_decoded(
    pictures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    load = ImageFile.ImageFile.load

    def counting(image: ImageFile.ImageFile) -> object:
        decoded.append(str(image.format))
        return load(image)

    _build(pictures)  # prepares the others once; they come from the cache from now on
    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    _build(pictures)
    assert "PNG" not in decoded  # small.png and the logo are only measured


def test_a_missing_copy_or_a_damaged_record_is_made_again(pictures: Path) -> None:
    first = _build(pictures)
    cache = pictures.parent.parent / IMAGE_CACHE
    records = sorted(cache.glob("*.json"))
    assert len(records) == len(first)  # one per image, kept as it is or prepared
    for record in records:
        data = json.loads(record.read_text(encoding="utf-8"))
        if data["copy"]:
            (cache / data["copy"]).unlink()  # a copy deleted by hand
        else:
            record.write_text('{"copy": "", "width": "wide"}', encoding="utf-8")
    second = _build(pictures)
    assert {src: (a.file, a.width, a.height, a.changes) for src, a in second.items()} == {
        src: (a.file, a.width, a.height, a.changes) for src, a in first.items()
    }
    assert all(a.file.is_file() for a in second.values())
