"""Local images made ready for email: upright, no wider than needed, in a format Outlook shows.

The one module that encodes images (Pillow). The editor's files are only read; what is written
goes into a cache folder, one file per (content, width) pair, so a second build finds it there,
with a record of the outcome (`<key>.json`: which file, its size in pixels, what was done), so
that a build whose images were all prepared before never loads Pillow (about 10 ms).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.compose.cachefiles import store

if TYPE_CHECKING:
    from PIL import Image

#: Formats every mail client shows; anything else (WebP, AVIF, HEIC, TIFF...) is converted.
EMAIL_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif"}
#: Files lighter than this that need no other change are left as they are.
HEAVY_BYTES = 200 * 1024
JPEG_QUALITY = 82
#: The largest image accepted (its header is checked before anything else is done with it).
MAX_IMAGE_SIDE = 10_000  # pixels; an email is about 600 wide, a retina image twice that
MAX_IMAGE_PIXELS = 40_000_000
#: Changes whenever the processing below or the limits change, so older cached files and
#: records are not reused.
RECIPE = f"2:q{JPEG_QUALITY}:{MAX_IMAGE_SIDE}:{MAX_IMAGE_PIXELS}"
_ORIENTATION = 0x0112
#: How errors name this cache.
_WHAT = "the image cache"


class UnreadableImage(Exception):
    """Pillow cannot read the file."""


@dataclass(frozen=True)
class EmailImage:
    """The file an email links to, its size in pixels, and what was done to the original."""

    file: Path
    width: int
    height: int
    suffix: str
    changes: tuple[str, ...] = ()


def _fingerprint(data: bytes, max_width: int) -> str:
    return hashlib.sha256(data + f"|{max_width}|{RECIPE}".encode()).hexdigest()[:32]


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: upright). A PNG's EXIF is read only if it comes before the
    pixels, so that measuring a PNG never decodes it."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return int(image.getexif().get(_ORIENTATION, 1))


def _plan(image: Image.Image, max_width: int, size_bytes: int) -> list[str]:
    """What the image needs, in words (empty: send it as it is)."""
    if image.format == "GIF" and getattr(image, "is_animated", False):
        return []  # animated GIFs are sent as they are: every mail client plays or stills them
    needs = []
    if image.format not in EMAIL_FORMATS:
        needs.append(f"converted from {image.format} (Outlook cannot show it)")
    orientation = _orientation(image)
    if orientation != 1:
        needs.append("turned upright (EXIF orientation)")
    width, height = image.size if orientation < 5 else image.size[::-1]
    if width > max_width:
        needs.append(f"resized from {width} x {height} px to at most {max_width} px wide")
    if not needs and size_bytes > HEAVY_BYTES:
        needs.append("compressed")
    return needs


def _encode(image: Image.Image, max_width: int) -> tuple[bytes, str]:
    """The image upright, at most `max_width` wide: PNG for drawings and transparency, JPEG for
    the rest (photos), without the original's metadata (such as where a photo was taken)."""
    from PIL import Image, ImageOps

    as_png = image.format in ("PNG", "GIF") or _has_alpha(image)
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image)
    if upright.mode not in ("RGB", "RGBA", "L", "LA"):
        upright = upright.convert("RGBA" if _has_alpha(upright) else "RGB")
    if upright.width > max_width:
        height = max(1, round(upright.height * max_width / upright.width))
        upright = upright.resize((max_width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if as_png:
        upright.save(buffer, "PNG", optimize=True, icc_profile=icc)
        return buffer.getvalue(), ".png"
    upright.convert("RGB").save(
        buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True, icc_profile=icc
    )
    return buffer.getvalue(), ".jpg"


def _prepared(file: Path, source_format: str | None, copy: Path, changes: list[str]) -> EmailImage:
    """The copy for email; it keeps the original's extension unless its format changed."""
    from PIL import Image

    same = EMAIL_FORMATS.get(source_format or "") == copy.suffix
    with Image.open(copy) as image:
        width, height = image.size
    weight = f"{file.stat().st_size / 1024:.0f} KB → {copy.stat().st_size / 1024:.0f} KB"
    suffix = file.suffix if same else copy.suffix
    return EmailImage(copy, width, height, suffix, (*changes, weight))


def _recorded(file: Path, cache: Path, key: str) -> EmailImage | None:
    """The outcome recorded for this content and width, if any (and its copy still there)."""
    try:
        data = json.loads((cache / f"{key}.json").read_text(encoding="utf-8"))
        copy = cache / Path(str(data["copy"])).name if data["copy"] else file
        image = EmailImage(
            copy, int(data["width"]), int(data["height"]), str(data["suffix"]),
            tuple(str(change) for change in data["changes"]),
        )  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return image if image.file.is_file() else None


def _record(file: Path, cache: Path, key: str, image: EmailImage) -> EmailImage:
    """Write down the outcome for this content and width; return it."""
    entry = {
        "copy": "" if image.file == file else image.file.name,
        "width": image.width, "height": image.height, "suffix": image.suffix,
        "changes": list(image.changes),
    }  # fmt: skip
    store(cache, f"{key}.json", json.dumps(entry).encode(), _WHAT)
    return image


def email_image(
    file: Path, max_width: int, cache: Path, check: Callable[[], object] = lambda: None
) -> EmailImage:
    """`file` ready for email at most `max_width` px wide; the original if it needs nothing.

    `check` is called first (it may raise) for a file whose outcome is not recorded yet.
    Raise UnreadableImage if Pillow cannot read it.
    """
    data = file.read_bytes()
    key = _fingerprint(data, max_width)
    if (known := _recorded(file, cache, key)) is not None:
        return known
    check()
    from PIL import Image, UnidentifiedImageError

    copies = sorted(path for path in cache.glob(f"{key}.*") if path.suffix != ".json")
    hit = copies[0] if copies else None
    try:
        with Image.open(io.BytesIO(data)) as image:
            source_format, size = image.format, image.size
            needs = _plan(image, max_width, len(data))
            encoded, suffix = _encode(image, max_width) if needs and not hit else (b"", "")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise UnreadableImage(str(file)) from None
    if not needs or (needs == ["compressed"] and not hit and len(encoded) >= len(data)):
        return _record(file, cache, key, EmailImage(file, *size, file.suffix))
    copy = hit or store(cache, key + suffix, encoded, _WHAT)
    return _record(file, cache, key, _prepared(file, source_format, copy, needs))
