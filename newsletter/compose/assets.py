"""Images an issue uses: local files found, measured and given their published URL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from newsletter.errors import IssueError, Problem


@dataclass(frozen=True)
class Asset:
    """An image as the email references it. `file` and `dest` are set for local images."""

    src: str
    url: str
    width: int | None = None
    height: int | None = None
    file: Path | None = None
    dest: str | None = None

    @property
    def size_bytes(self) -> int | None:
        """The file's size on disk, for local images."""
        return self.file.stat().st_size if self.file else None


@dataclass(frozen=True)
class ImageRef:
    """Where an issue mentions an image: its src and the field or line naming it."""

    src: str
    field: str | None = None
    line: int | None = None

    def error(self, message: str, source: Path) -> IssueError:
        """An IssueError about this image, located where the issue names it."""
        return IssueError(Problem(message, source, self.line, self.field))


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
            f"image file '{ref.src}' not found in {folder}; add the file or fix the path", source
        )
    if not file.resolve().is_relative_to(folder.resolve()):
        raise ref.error(
            f"image '{ref.src}' is a symbolic link to {file.resolve()}, outside {folder}; "
            "copy the file in instead of linking to it",
            source,
        )
    return file


def _measure(file: Path, ref: ImageRef, source: Path) -> tuple[int, int]:
    try:
        with PILImage.open(file) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        raise ref.error(
            f"'{file.name}' is not an image Pillow can read; use PNG, JPEG or GIF", source
        ) from None


def resolve_images(
    refs: Iterable[ImageRef], folder: Path, source: Path, base_url: str, prefix: str = "images"
) -> dict[str, Asset]:
    """Resolve each referenced image once: remote ones as they are, local ones measured.

    A local file `folder/images/a.png` (or `folder/a.png`) is published as `prefix/a.png`,
    that is at `base_url + prefix/a.png`.
    """
    assets: dict[str, Asset] = {}
    for ref in refs:
        if ref.src in assets:
            continue
        if is_remote(ref.src):
            assets[ref.src] = Asset(ref.src, ref.src)
            continue
        file = _local_file(folder, ref, source)
        width, height = _measure(file, ref, source)
        parts = PurePosixPath(ref.src).parts
        inner = parts[1:] if parts[0] == "images" and len(parts) > 1 else parts
        dest = str(PurePosixPath(prefix, *inner))
        url = base_url + quote(dest)
        assets[ref.src] = Asset(ref.src, url, width, height, file, dest)
    return assets
