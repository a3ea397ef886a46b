"""The only code that writes a build folder: all of it, atomically, or nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .build import BuiltIssue
from .errors import NewsletterError


class WriteError(NewsletterError):
    """The build folder could not be written."""


def write_build(built: BuiltIssue, out: Path, preview_html: str) -> Path:
    """Write index.html, index.txt, index.mjml, preview.html and images/ into `out`.

    Everything is written into a temporary folder beside `out` and moved into place at the
    end, so a failure never leaves a half-written build (the previous one stays intact).
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "index.html").write_text(built.html, encoding="utf-8")
        (staging / "index.txt").write_text(built.text, encoding="utf-8")
        (staging / "index.mjml").write_text(built.mjml, encoding="utf-8")
        (staging / "preview.html").write_text(preview_html, encoding="utf-8")
        for asset in built.assets:
            if asset.file and asset.dest:
                target = staging / asset.dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(asset.file, target)
        _swap_into_place(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteError(f"cannot write the build into {out}: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
