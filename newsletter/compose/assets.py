"""Images an issue uses: local files found, prepared for email and given their published URL."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from newsletter.compose.imaging import (
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    EmailImage,
    UnreadableImage,
    email_image,
)
from newsletter.errors import IssueError, Problem


@dataclass(frozen=True)
class Asset:
    """An image as the email references it. `file` and `dest` are set for local images.

    For a local image, `file` is what the email links to: the editor's file, or the copy made
    for email (`changes` says what was done) with its own width and height.
    """

    src: str
    url: str
    width: int | None = None
    height: int | None = None
    file: Path | None = None
    dest: str | None = None
    changes: tuple[str, ...] = ()

    @property
    def size_bytes(self) -> int | None:
        """The file's size on disk, for local images."""
        return self.file.stat().st_size if self.file else None


@dataclass(frozen=True)
class ImageRef:
    """Where an issue mentions an image: its src, the field or line naming it, and how wide
    (in CSS pixels) the email shows it at most."""

    src: str
    field: str | None = None
    line: int | None = None
    display_width: int = 600  # the email's whole width: the most any image is shown at

    def error(self, message: str, source: Path, code: str = "bad-image") -> IssueError:
        """An IssueError about this image, located where the issue names it."""
        return IssueError(Problem(message, source, self.line, self.field, code=code))


def is_remote(src: str) -> bool:
    """True for an http(s) URL, False for a path inside the issue folder."""
    return urlsplit(src).scheme in ("http", "https")


def _local_file(folder: Path, ref: ImageRef, source: Path) -> Path:
    relative = PurePosixPath(ref.src)
    if relative.is_absolute() or ".." in relative.parts or urlsplit(ref.src).scheme:
        raise ref.error(
            f"image '{ref.src}' must be an https URL or a path inside the issue folder", source
        )
    file = folder / relative
    if not file.is_file():
        raise ref.error(
            f"image file '{ref.src}' not found in {folder}; add the file or fix the path",
            source,
            "missing-image",
        )
    if not file.resolve().is_relative_to(folder.resolve()):
        raise ref.error(
            f"image '{ref.src}' is a symbolic link to {file.resolve()}, outside {folder}; "
            "copy the file in instead of linking to it",
            source,
        )
    return file


def _too_large(file: Path, ref: ImageRef, source: Path, size: str) -> IssueError:
    return ref.error(
        f"'{file.name}' is {size}; images may be at most {MAX_IMAGE_SIDE:,} pixels a side and "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels: resize it (1200 pixels wide is plenty)",
        source,
    )


def _measure(file: Path, ref: ImageRef, source: Path) -> tuple[int, int]:
    """Width and height from the file's header; absurd sizes (decompression bombs) refused."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(file) as image:
                width, height = image.size
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise _too_large(file, ref, source, "a decompression bomb (too many pixels)") from None
    except (UnidentifiedImageError, OSError):
        raise ref.error(
            f"'{file.name}' is not an image Pillow can read; use JPEG, PNG, GIF, WebP or AVIF",
            source,
        ) from None
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise _too_large(file, ref, source, f"{width:,} x {height:,} pixels")
    return width, height


def _prepare(file: Path, ref: ImageRef, source: Path, max_width: int, cache: Path) -> EmailImage:
    """The image ready for email, once its header shows a sane size (known if the same content
    was prepared before)."""
    try:
        return email_image(file, max_width, cache, check=lambda: _measure(file, ref, source))
    except UnreadableImage:
        raise ref.error(
            f"'{file.name}' is not an image Pillow can read; use JPEG, PNG, GIF, WebP or AVIF",
            source,
        ) from None


def resolve_images(
    refs: Iterable[ImageRef],
    folder: Path,
    source: Path,
    base_url: str,
    cache: Path,
    prefix: str = "images",
) -> dict[str, Asset]:
    """Resolve each referenced image once: remote ones as they are, local ones prepared;
    IssueError naming every image that is missing or unreadable.

    A local image is prepared for email (`imaging.email_image`) at twice the widest it is shown,
    for sharp pictures on high-density screens; copies go into `cache`. A local file
    `folder/images/a.png` (or `folder/a.png`) is published as `prefix/a.png`, that is at
    `base_url + prefix/a.png` (another extension if it was converted).
    """
    refs = list(refs)
    widest: dict[str, int] = {}
    for ref in refs:
        widest[ref.src] = max(widest.get(ref.src, 0), ref.display_width)
    assets: dict[str, Asset] = {}
    problems: list[Problem] = []
    failed: set[str] = set()
    for ref in refs:
        if ref.src in assets or ref.src in failed:
            continue
        if is_remote(ref.src):
            assets[ref.src] = Asset(ref.src, ref.src)
            continue
        try:
            file = _local_file(folder, ref, source)
            image = _prepare(file, ref, source, 2 * widest[ref.src], cache)
        except IssueError as exc:
            problems += exc.problems
            failed.add(ref.src)
            continue
        parts = PurePosixPath(ref.src).parts
        inner = parts[1:] if parts[0] == "images" and len(parts) > 1 else parts
        dest = str(PurePosixPath(prefix, *inner).with_suffix(image.suffix))
        url = base_url + quote(dest)
        assets[ref.src] = Asset(
            ref.src, url, image.width, image.height, image.file, dest, image.changes
        )
    if problems:
        raise IssueError(*problems)
    return assets
