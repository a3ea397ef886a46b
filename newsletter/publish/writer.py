"""Output folders (a build, the archive) are written whole, atomically, or not at all.

An output folder is replaced as a whole, so it must be one this tool wrote: each carries a
marker file, and `staged` refuses to replace a folder that holds anything without it, as well
as any folder the caller protects (the project, its issues) or a parent of one. The archive's
folder keeps these rules in `generation`, which makes the site in the one it last replaced.
"""

from __future__ import annotations

import glob
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from newsletter.compose.build import BuiltIssue
from newsletter.errors import OutputFolderError, Problem, WriteError

MARKER = ".newsletter-output"
MARKER_TEXT = "Written by newsletter, which replaces this whole folder when it writes it again.\n"

#: Output folders are readable by everyone (a web server serves them), writable by their owner.
FOLDER_MODE = 0o755
#: A folder that a killed run left beside an output folder (being made, or being retired) is
#: removed by a later run once it has not changed for this long: no run takes hours.
STALE_SECONDS = 6 * 3600


def previous_folder(out: Path) -> Path:
    """Where the archive keeps the site replaced by its last run, to become the next one."""
    return out.with_name(f".{out.name}.previous")


def staging_folder(out: Path) -> Path:
    """A new, empty folder beside `out` (`.<name>.XXXXXXXX`) to make its next version in.

    First, the leftovers of killed runs are removed: folders of that shape, ours (marked, or
    empty) and unchanged for STALE_SECONDS; the kept previous generation is not one of them.
    """
    now = time.time()
    for leftover in out.parent.glob(f".{glob.escape(out.name)}.*"):
        if leftover == previous_folder(out) or leftover.is_symlink() or not leftover.is_dir():
            continue
        try:
            ours = (leftover / MARKER).is_file() or not any(leftover.iterdir())
            stale = now - leftover.lstat().st_mtime > STALE_SECONDS
        except OSError:  # gone meanwhile
            continue
        if ours and stale:
            shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(FOLDER_MODE)  # mkdtemp makes it 0700, which a web server cannot read
    return staging


def check_output_folder(out: Path, protect: Sequence[Path] = ()) -> None:
    """OutputFolderError unless `out` is new, empty or an output this tool wrote, and neither
    one of the `protect`ed folders nor a parent of one."""
    out = out.resolve()
    for folder in protect:
        if folder.resolve().is_relative_to(out):
            raise OutputFolderError(
                Problem(
                    f"{out} is or holds {folder.resolve()}, which must never be replaced; "
                    "choose a folder of its own for the output, such as build/",
                    field="--out",
                    code="output-folder",
                )
            )
    if out.exists() and not out.is_dir():
        raise OutputFolderError(
            Problem(f"{out} is a file, not a folder", field="--out", code="output-folder")
        )
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise OutputFolderError(
            Problem(
                f"{out} already holds files that newsletter did not write (it has no {MARKER}), "
                "so it is not replaced; choose a new or empty folder, or empty this one",
                field="--out",
                code="output-folder",
            )
        )


@contextmanager
def staged(out: Path, what: str, protect: Sequence[Path] = ()) -> Iterator[Path]:
    """A temporary folder beside `out` to fill; it replaces `out` when the block succeeds.

    `out` is checked first (`check_output_folder`). On any failure the temporary folder is
    removed and `out` stays as it was, so a failure never leaves a half-written folder. An
    OSError becomes a WriteError naming `what`.
    """
    check_output_folder(out, protect)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(out)
    try:
        (staging / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        yield staging
        swap_into_place(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteError(f"cannot write {what} into {out}: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def copy_file(source: Path, target: Path) -> None:
    """Copy `source` to `target`, creating the folders it needs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def write_build(
    built: BuiltIssue, out: Path, preview_html: str, protect: Sequence[Path] = ()
) -> Path:
    """Write index.html, index.txt, index.mjml, preview.html and images/ into `out`, atomically
    (see `staged` for what it refuses to replace)."""
    out = out.resolve()
    with staged(out, "the build", protect) as staging:
        (staging / "index.html").write_text(built.html, encoding="utf-8")
        (staging / "index.txt").write_text(built.text, encoding="utf-8")
        (staging / "index.mjml").write_text(built.mjml, encoding="utf-8")
        (staging / "preview.html").write_text(preview_html, encoding="utf-8")
        for asset in built.assets:
            if asset.file and asset.dest:
                copy_file(asset.file, staging / asset.dest)
    return out


def swap_into_place(staging: Path, out: Path, keep: Path | None = None) -> None:
    """Replace `out` by `staging`, keeping the old folder until the new one is in place; then
    it is kept as `keep` (if given and the name is free) or deleted."""
    if not out.exists():
        staging.rename(out)
        return
    retired = staging.with_name(f"{staging.name}.old")  # as unique as the staging folder
    try:
        if keep is None:
            raise FileExistsError
        out.rename(keep)
        retired = keep
    except OSError:  # nothing to keep, or a folder that is not ours holds the name
        out.rename(retired)
    try:
        staging.rename(out)
    except OSError:
        retired.rename(out)
        raise
    if retired != keep:
        shutil.rmtree(retired, ignore_errors=True)
