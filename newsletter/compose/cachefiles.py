"""Files of the build's caches (prepared images, compiled HTML), written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from newsletter.errors import NewsletterError


def store(cache: Path, name: str, data: bytes, what: str) -> Path:
    """Write `cache/name` atomically (a half-written file is never found by a later build);
    NewsletterError naming `what` ("the image cache") if it cannot be written."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache, prefix=".tmp-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, cache / name)
    except OSError as exc:
        raise NewsletterError(f"cannot write {what} {cache}: {exc.strerror}") from None
    return cache / name
