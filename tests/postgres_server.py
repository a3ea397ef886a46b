"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries (`initdb`,
`pg_ctl`) run on a fresh data folder in a temp folder, listening on 127.0.0.1 (and on a socket
in that folder) with durability switched off for speed (unless asked to keep it); stopped and
removed afterwards.

PostgreSQL refuses to run as root, so under root the server runs as `nobody`. Every login,
the superuser's included, needs its password (scram-sha-256). No pytest in here: a script outside
the suite adds `tests/` to `sys.path` and runs

    with Cluster() as cluster:
        database = cluster.create_database()  # .url (no password), .dsn, .password
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from smtp_sink import free_port

#: Where the application reads the database password from (never from the URL or the file).
PASSWORD_ENV = "NEWSLETTER_DATABASE_PASSWORD"
#: Debian installs each major version's server under <root>/<version>/bin.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
HOST = "127.0.0.1"
SUPERUSER = "postgres"
ROLE = "newsletter"
#: Every wait on the server, in seconds.
TIMEOUT = 30
INSTALL_HINT = "Debian's postgresql package; `make test` installs it where it runs as root"

#: Every throwaway cluster's settings: loopback only, little WAL, no checkpoints during a run.
SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "200",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "'1d'",
    "max_wal_size": "'1GB'",
    "shared_buffers": "'64MB'",
    "unix_socket_permissions": "0700",
    "password_encryption": "'scram-sha-256'",
    "logging_collector": "off",
}
#: Durability off for a cluster nobody needs after the run; `Cluster(durable=True)` (the
#: benchmarks' realistic figure) keeps PostgreSQL's defaults: fsync, synchronous commits.
NO_SYNC = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
#: Password logins only: over loopback TCP, or over the socket in the cluster's private folder.
HBA = "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"


class PostgresUnavailable(Exception):
    """PostgreSQL is not installed here, or it would not start; the message says which."""


def _version(folder: Path) -> tuple[int, ...]:
    """Debian's version folder name ("15", "9.6") as numbers; () if it is not one."""
    try:
        return tuple(int(part) for part in folder.name.split("."))
    except ValueError:
        return ()


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: found on PATH, else the highest Debian version."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    versions = [path.parent.parent for path in DEBIAN_ROOT.glob("*/bin/initdb")]
    versions = [folder for folder in versions if _version(folder)]
    return max(versions, key=_version) / "bin" if versions else None


@dataclass(frozen=True)
class Database:
    """One empty database owned by the cluster's unprivileged role."""

    name: str
    port: int
    role: str
    password: str

    @property
    def url(self) -> str:
        """What goes in `newsletter.toml`: no password (that comes from PASSWORD_ENV)."""
        return f"postgresql://{self.role}@{HOST}:{self.port}/{self.name}"

    @property
    def dsn(self) -> str:
        """A libpq connection string with the password, for tests that connect themselves."""
        return make_conninfo(
            host=HOST,
            port=self.port,
            dbname=self.name,
            user=self.role,
            password=self.password,
            connect_timeout=TIMEOUT,
        )


class Cluster:
    """Start with `start()` or `with Cluster() as cluster:`; `create_database()` per user.
    `durable` keeps fsync and synchronous commits on (PostgreSQL's defaults)."""

    def __init__(self, *, durable: bool = False) -> None:
        self.settings = SETTINGS if durable else {**SETTINGS, **NO_SYNC}
        self.folder: Path | None = None
        self._binaries: Path | None = None
        self.port = 0
        self.password = secrets.token_urlsafe(18)
        self._superuser_password = secrets.token_urlsafe(18)
        self._admin: psycopg.Connection[Any] | None = None
        self._numbers = itertools.count(1)
        # PostgreSQL refuses root: the server runs as `nobody`, with no supplementary groups.
        if os.geteuid() == 0:
            account = pwd.getpwnam("nobody")
            self._uid, self._gid = account.pw_uid, account.pw_gid
            self._as_account: dict[str, Any] = {
                "user": self._uid,
                "group": self._gid,
                "extra_groups": [],
            }
        else:
            self._uid, self._gid = os.geteuid(), os.getegid()
            self._as_account = {}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        assert self.folder is not None, "the cluster is not started"
        return self.folder / "data"

    @property
    def pid(self) -> int:
        """The postmaster's process id (the first line of postmaster.pid)."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def start(self) -> Self:
        """initdb, then pg_ctl start on a free loopback port; PostgresUnavailable if it cannot."""
        binaries = self._binaries = server_binaries()
        if binaries is None:
            raise PostgresUnavailable(
                f"PostgreSQL's initdb and pg_ctl are missing ({INSTALL_HINT})"
            )
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        try:
            os.chown(self.folder, self._uid, self._gid)
            self._initdb(binaries)
            self._launch(binaries)
            self._admin = psycopg.connect(
                self._conninfo(SUPERUSER, self._superuser_password, "postgres"), autocommit=True
            )
            self._admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(self.password)
                )
            )
        except psycopg.Error as error:
            self.stop()
            raise PostgresUnavailable(
                f"PostgreSQL started but refused its setup: {error}"
            ) from error
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, command: list[str], what: str) -> None:
        """Run a server tool as the server's account; PostgresUnavailable with its output."""
        try:
            done = subprocess.run(
                command,
                cwd=self.folder,
                capture_output=True,
                text=True,
                timeout=TIMEOUT + 30,
                check=False,
                **self._as_account,
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise PostgresUnavailable(f"PostgreSQL's {what} failed: {error}") from error
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-800:]
            raise PostgresUnavailable(f"PostgreSQL's {what} failed: {output}")

    def _initdb(self, binaries: Path) -> None:
        assert self.folder is not None
        secret = self.folder / "superuser-password"
        secret.write_text(self._superuser_password)
        os.chown(secret, self._uid, self._gid)
        command = [str(binaries / "initdb"), "--pgdata", str(self.data), "--username", SUPERUSER]
        command += ["--pwfile", str(secret), "--auth", "scram-sha-256"]
        command += ["--encoding", "UTF8", "--locale", "C", "--no-sync"]
        try:
            self._run(command, "initdb")
        finally:
            secret.unlink()
        (self.data / "pg_hba.conf").write_text(HBA)
        settings = {**self.settings, "unix_socket_directories": f"'{self.folder}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# newsletter's test cluster\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _launch(self, binaries: Path) -> None:
        """pg_ctl start; another free port if the first one was taken meanwhile."""
        assert self.folder is not None
        log = self.folder / "server.log"
        for attempt in range(3):
            self.port = free_port()
            command = [str(binaries / "pg_ctl"), "--pgdata", str(self.data), "--log", str(log)]
            command += ["--wait", f"--timeout={TIMEOUT}", "-o", f"-p {self.port}", "start"]
            try:
                self._run(command, "pg_ctl start")
                return
            except PostgresUnavailable as error:
                text = log.read_text(errors="replace") if log.exists() else ""
                if "could not bind" not in text or attempt == 2:
                    raise PostgresUnavailable(f"{error}\n{text[-800:]}".rstrip()) from None
                log.unlink()

    def _conninfo(self, user: str, password: str, dbname: str) -> str:
        return make_conninfo(
            host=HOST,
            port=self.port,
            dbname=dbname,
            user=user,
            password=password,
            connect_timeout=TIMEOUT,
        )

    def create_database(self) -> Database:
        """A new empty database (t_1, t_2...) owned by the role, which may create extensions."""
        assert self._admin is not None, "the cluster is not started"
        name = f"t_{next(self._numbers)}"
        self._admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(ROLE)
            )
        )
        return Database(name, self.port, ROLE, self.password)

    def drop_database(self, database: Database) -> None:
        """Drop it, ending whatever sessions are still connected to it."""
        assert self._admin is not None, "the cluster is not started"
        self._admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
        )

    def stop(self) -> None:
        """pg_ctl stop -m immediate (SIGKILL if that fails), then remove the folder."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.folder is None:
            return
        if self._binaries is not None and (self.data / "postmaster.pid").exists():
            command = [str(self._binaries / "pg_ctl"), "--pgdata", str(self.data), "--wait"]
            command += [f"--timeout={TIMEOUT}", "--mode=immediate", "stop"]
            try:
                self._run(command, "pg_ctl stop")
            except PostgresUnavailable:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
