"""The site written by bringing the previous generation up to date, then swapped in whole.

Making the site in a new folder means creating hundreds of folders and, once it is in place,
deleting the old tree: most of an incremental `newsletter archive`. Instead, the site being
replaced is kept beside it (`.<site name>.previous`, marked like every output folder) and the
next run turns that folder into the new site: files are replaced, unchanged ones become hard
links to the live site's, what is no longer part of the site is removed, then the folders
swap (see `writer` for the guarantees every output folder has).

Nothing in the kept folder is trusted: a file is kept only if it is the live site's own file
(the same inode) or was written by this run, so a run killed half-way only leaves work for the
next. An existing file is never written into, only replaced, because it may be shared with the
live site. Deleting the kept folder costs nothing but the time to make folders again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from newsletter.errors import NewsletterError, WriteError
from newsletter.publish.writer import (
    MARKER,
    MARKER_TEXT,
    check_output_folder,
    previous_folder,
    staging_folder,
    swap_into_place,
)


class NextSite:
    """The folder the next site is made in, by path relative to it (`a/index.html`)."""

    def __init__(self, folder: Path, live: Path) -> None:
        self.folder, self.live = folder, live
        self._files: set[str] = set()
        self._folders = {""}  # made (or found) in this run, "" being the site itself

    def write_text(self, path: str, text: str) -> None:
        """The file `path` holding `text`."""
        with open(self._new(path), "x", encoding="utf-8") as file:
            file.write(text)

    def copy(self, path: str, source: Path) -> None:
        """The file `path` as a copy of `source` (contents and times)."""
        shutil.copy2(source, self._new(path))

    def link(self, path: str) -> bool:
        """The file `path` as the live site's own (a hard link); False if it cannot be."""
        try:
            live = os.stat(self.live / path)
            target = self._place(path)
            with suppress(FileNotFoundError):
                if os.path.samestat(os.lstat(target), live):
                    return True  # kept from the last run, and still the live site's
                target.unlink()
            os.link(self.live / path, target)
        except OSError:  # not in the live site, or no hard links here: the caller writes it
            return False
        return True

    def prune(self) -> None:
        """Remove every file and folder this run did not make or keep."""
        self._prune(self.folder, "")

    def _place(self, path: str) -> Path:
        """Where `path` goes, counted as part of the site, its folder made."""
        parent = path.rpartition("/")[0]
        if parent not in self._folders:
            (self.folder / parent).mkdir(parents=True, exist_ok=True)
            while parent not in self._folders:
                self._folders.add(parent)
                parent = parent.rpartition("/")[0]
        self._files.add(path)
        return self.folder / path

    def _new(self, path: str) -> Path:
        """`path` ready to be created: whatever the folder held there before is removed (it
        may be the live site's file too, which must not change)."""
        target = self._place(path)
        with suppress(FileNotFoundError):
            target.unlink()
        return target

    def _prune(self, folder: Path, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                path = prefix + entry.name
                if not entry.is_dir(follow_symlinks=False):
                    if path not in self._files:
                        os.unlink(entry.path)
                elif path in self._folders:
                    self._prune(Path(entry.path), f"{path}/")
                else:
                    shutil.rmtree(entry.path)


@contextmanager
def updated(out: Path, what: str, protect: Sequence[Path] = ()) -> Iterator[NextSite]:
    """The next site to fill, in the previous generation if there is one; it replaces `out`
    when the block succeeds, and `out` is kept as the next run's previous generation.

    `out` is checked first (`check_output_folder`); a previous folder is used only if it is a
    folder marked as ours, else a new folder is made. On any failure `out` stays as it was and
    the folder being made is kept as the previous generation (or removed if it cannot be). An
    OSError becomes a WriteError naming `what`.
    """
    check_output_folder(out, protect)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = previous_folder(out)
    staging = staging_folder(out)
    if _is_ours(previous, protect):
        with suppress(OSError):  # taken whole (renamed over the empty folder), so no other run
            previous.rename(staging)  # can be updating it at the same time
    try:
        site = NextSite(staging, out)
        site.write_text(MARKER, MARKER_TEXT)
        yield site
        site.prune()
        swap_into_place(staging, out, previous)
    except BaseException as exc:
        _set_aside(staging, previous)
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {what} into {out}: {exc}") from exc
        raise


def _is_ours(folder: Path, protect: Sequence[Path]) -> bool:
    """Whether `folder` is a real folder holding our marker, and no protected folder."""
    if folder.is_symlink() or not (folder / MARKER).is_file():
        return False
    try:
        check_output_folder(folder, protect)
    except NewsletterError:
        return False
    return True


def _set_aside(staging: Path, previous: Path) -> None:
    """Keep a folder that did not become the site as the previous generation, or remove it."""
    try:
        staging.rename(previous)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
