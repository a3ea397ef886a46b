"""The only code that writes output folders (a build, the archive): whole, atomically, or not."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from newsletter.compose.build import BuiltIssue
from newsletter.errors import NewsletterError

#: Output folders are readable by everyone (a web server serves them), writable by their owner.
FOLDER_MODE = 0o755


class WriteError(NewsletterError):
    """An output folder could not be written."""


@contextmanager
def staged(out: Path, what: str) -> Iterator[Path]:
    """A temporary folder beside `out` to fill; it replaces `out` when the block succeeds.

    On any failure the temporary folder is removed and `out` stays as it was, so a failure
    never leaves a half-written folder. An OSError becomes a WriteError naming `what`.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(FOLDER_MODE)  # mkdtemp makes it 0700, which a web server cannot read
    try:
        yield staging
        _swap_into_place(staging, out)
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


def write_build(built: BuiltIssue, out: Path, preview_html: str) -> Path:
    """Write index.html, index.txt, index.mjml, preview.html and images/ into `out`, atomically."""
    out = out.resolve()
    with staged(out, "the build") as staging:
        (staging / "index.html").write_text(built.html, encoding="utf-8")
        (staging / "index.txt").write_text(built.text, encoding="utf-8")
        (staging / "index.mjml").write_text(built.mjml, encoding="utf-8")
        (staging / "preview.html").write_text(preview_html, encoding="utf-8")
        for asset in built.assets:
            if asset.file and asset.dest:
                copy_file(asset.file, staging / asset.dest)
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace `out` by `staging`, keeping the old folder until the new one is in place."""
    if not out.exists():
        staging.rename(out)
        return
    retired = out.with_name(f".{out.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    out.rename(retired)
    try:
        staging.rename(out)
    except OSError:
        retired.rename(out)
        raise
    shutil.rmtree(retired, ignore_errors=True)
