"""Shared fixtures: a real project folder in tmp_path, copied from the repository's example."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lanes import mark_slow
from postgres_server import PASSWORD_ENV, Cluster, Database, PostgresUnavailable
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SLUG = "2026-11-24-france-welcomes-chechen-refugees"


#: base_url is news.example.org: tests never ask it whether the published images are there.
NO_URL_CHECK = "\n[publish]\ncheck_urls = false\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (config, logo, the example issue) as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root)
    with (root / "newsletter.toml").open("a", encoding="utf-8") as config:
        config.write(NO_URL_CHECK)
    shutil.copytree(REPO / "assets", root / "assets")
    shutil.copytree(REPO / "issues" / EXAMPLE_SLUG, root / "issues" / EXAMPLE_SLUG)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def example(project: Path) -> Path:
    """The example issue's folder inside the project."""
    return project / "issues" / EXAMPLE_SLUG


@pytest.fixture
def runner() -> CliRunner:
    """Runs the Typer app in-process."""
    return CliRunner()


MINIMAL_FRONT = """\
subject: "A small issue"
preheader: "Something worth opening"
date: 2026-11-24
lead:
  title: "A small headline"
"""


@pytest.fixture
def write_issue(project: Path) -> Callable[..., Path]:
    """Write issues/<slug>/issue.md from front matter and body; return the folder."""

    def write(front: str = MINIMAL_FRONT, body: str = "Hello.\n", slug: str = "small") -> Path:
        folder = project / "issues" / slug
        (folder / "images").mkdir(parents=True, exist_ok=True)
        text = f"---\n{textwrap.dedent(front)}---\n{textwrap.dedent(body)}"
        (folder / "issue.md").write_text(text, encoding="utf-8")
        return folder

    return write


SMTP_CONFIG = """
[sending]
transport = "smtp"
retry_delay = 0.05
max_attempts = 3
max_consecutive_failures = 20

[[smtp]]
name = "sink"
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 5
connections = {connections}
"""


@pytest.fixture
def smtp_project(project: Path) -> Callable[..., Path]:
    """Point the project's config at an SMTP server on 127.0.0.1:port."""

    def configure(port: int, connections: int = 2) -> Path:
        config = project / "newsletter.toml"
        config.write_text(
            config.read_text() + SMTP_CONFIG.format(port=port, connections=connections)
        )
        return config

    return configure


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the session; the test is skipped if there is none."""
    cluster = Cluster()
    try:
        cluster.start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_database(postgres_cluster: Cluster) -> Iterator[Database]:
    """A fresh empty database for this test (.url, .dsn, .password), dropped afterwards."""
    database = postgres_cluster.create_database()
    yield database
    postgres_cluster.drop_database(database)


@pytest.fixture
def postgres_url(postgres_database: Database, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test database's URL without its password, which is in NEWSLETTER_DATABASE_PASSWORD."""
    monkeypatch.setenv(PASSWORD_ENV, postgres_database.password)
    return postgres_database.url


@pytest.fixture
def postgres_dsn(postgres_database: Database) -> str:
    """The same database as a libpq connection string with the password, for psycopg.connect."""
    return postgres_database.dsn


# The fast lane (`make test-fast`) runs `-m "not slow"`: these whole-process, real-browser and
# crash modules, and every test that starts a server or a process (tests/lanes.py), are left to
# the full `make test`, which always runs them.
SLOW_MODULES = frozenset(
    {"test_crash_safety", "test_layout_browser", "test_web_browser", "test_preview"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` what the fast lane leaves out (a test may also mark itself)."""
    mark_slow(items, SLOW_MODULES)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`each_database`: SQLite and PostgreSQL, or SQLite alone for a test marked
    `sqlite_only` (it is about the SQLite file itself)."""
    if "each_database" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        backends = ["sqlite"]
        if not only:
            backends.append(pytest.param("postgresql", marks=pytest.mark.postgres_rerun))
        metafunc.parametrize("each_database", backends, indirect=True)


@pytest.fixture
def each_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once on SQLite and once on PostgreSQL (a module opts in with
    `pytestmark = pytest.mark.usefixtures("each_database")`).

    On PostgreSQL the test's project (if it uses one) is configured with the test database's
    URL, and every SQLite path the test opens through `db.connect` is that same database: a
    test written against `project / "newsletter.db"` runs unchanged on the server.
    """
    if request.param == "sqlite":
        yield "sqlite"
        return
    from newsletter.deliver import db, postgres

    url = request.getfixturevalue("postgres_url")
    if "project" in request.fixturenames:
        config = request.getfixturevalue("project") / "newsletter.toml"
        config.write_text(f'database = "{url}"\n' + config.read_text(encoding="utf-8"))
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    others: dict[Path, Database] = {}
    real_connect = db.connect

    def server(path: Path) -> str:
        """The project's database for a `newsletter.db`, another one for any other file."""
        if path.name == "newsletter.db":
            return url
        if path.resolve() not in others:
            others[path.resolve()] = cluster.create_database()
        return others[path.resolve()].url

    def connect(location: Path | str, lock_wait: float = 30.0, *, migrated: bool = True) -> Any:
        target = server(location) if isinstance(location, Path) else location
        return real_connect(target, lock_wait, migrated=migrated)

    monkeypatch.setattr(db, "connect", connect)
    try:
        yield "postgresql"
    finally:
        postgres.close_pools()
        for database in others.values():
            cluster.drop_database(database)
