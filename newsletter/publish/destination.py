"""`newsletter publish`: the site copied to where base_url serves it, readable by a web server.

The destination is a folder (copied into, files replaced, nothing deleted) or a command from
the config, such as `rsync -a --delete {site}/ web:/var/www/news/`, run without a shell with
`{site}` replaced by the site folder. Either way every folder of the site is first made 0755
and every file 0644, so what arrives can be served.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from newsletter.errors import ConfigError, Problem, PublishError
from newsletter.publish.writer import FOLDER_MODE

FILE_MODE = 0o644


def make_readable(site: Path) -> None:
    """Folders 0755, files 0644, throughout `site`."""
    site.chmod(FOLDER_MODE)
    for path in site.rglob("*"):
        if not path.is_symlink():
            path.chmod(FOLDER_MODE if path.is_dir() else FILE_MODE)


def copy_site(site: Path, folder: Path) -> int:
    """Copy every file of `site` into `folder` (created if needed); return how many."""
    make_readable(site)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(FOLDER_MODE)
        shutil.copytree(site, folder, dirs_exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot copy {site} into {folder}: {exc}") from None
    return sum(1 for path in site.rglob("*") if path.is_file())


def command_line(command: str, site: Path) -> list[str]:
    """The configured command as arguments, `{site}` replaced (no shell is involved)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            Problem(
                f"cannot read the command: {exc}", field="publish.command", code="invalid-field"
            )
        ) from None
    if not words:
        raise ConfigError(
            Problem("the command is empty", field="publish.command", code="invalid-field")
        )
    return [word.replace("{site}", str(site)) for word in words]


def run_command(command: str, site: Path, timeout: float) -> str:
    """Run the publish command on `site`; return what it printed; PublishError if it fails."""
    make_readable(site)
    argv = command_line(command, site)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise PublishError(
            f"publish command '{argv[0]}' not found; install it or fix publish.command"
        ) from None
    except subprocess.TimeoutExpired:
        raise PublishError(f"publish command '{argv[0]}' did not finish in {timeout:g} s") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PublishError(f"publish command '{argv[0]}' failed ({done.returncode}): {last[0]}")
    return done.stdout
