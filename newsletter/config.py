"""Site configuration: `newsletter.toml` read, validated and turned into a frozen Config."""

from __future__ import annotations

import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from newsletter.errors import ConfigError, Problem
from newsletter.validation import (
    Domain,
    Email,
    HeaderText,
    Rate,
    StrictModel,
    Text,
    WebUrl,
    problems_from,
)

CONFIG_NAME = "newsletter.toml"


def check_database_url(value: str) -> str:
    """`value` if it is no `postgresql://` URL, or one with a host and without a password;
    ValueError saying what is wrong otherwise."""
    if value.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(value)
        if parts.password is not None:
            raise ValueError(
                "the database URL holds a password: remove it and set it in the "
                "environment variable NEWSLETTER_DATABASE_PASSWORD instead"
            )
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("the database URL names no host: postgresql://USER@HOST/NAME")
    elif "://" in value:
        raise ValueError(
            f"unknown kind of database '{value.split('://')[0]}': use an SQLite file's path "
            "or a postgresql://USER@HOST/NAME URL"
        )
    return value


class Sender(StrictModel):
    """Who the newsletter comes from."""

    name: HeaderText
    address: Email
    reply_to: Email | None = None


class Brand(StrictModel):
    """The email's look: colours (each a hex colour such as '#1d6f5f'), logo width, date format.

    `dark_accent` is the accent in dark mode; without it, one is derived from `accent`.
    `date_format` is Babel's "short", "medium", "long" or "full", or a CLDR pattern such as
    "d MMMM y" ("24 November 2026"), written in the newsletter's language.
    """

    accent: str = Field("#c2410c", pattern=r"^#[0-9a-fA-F]{6}$")
    dark_accent: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    text: str = Field("#1f2328", pattern=r"^#[0-9a-fA-F]{6}$")
    muted: str = Field("#5b636e", pattern=r"^#[0-9a-fA-F]{6}$")
    background: str = Field("#f3efe6", pattern=r"^#[0-9a-fA-F]{6}$")
    card: str = Field("#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")
    logo_width: int = Field(200, ge=16, le=600)
    date_format: Text = "d MMMM y"


def _host(value: str) -> str:
    if "://" in value or value.count(":") == 1 or any(c.isspace() for c in value):
        raise ValueError(
            f"'{value}' is not a host name; write only the name (smtp.example.org), "
            "with the port in port = ... and no scheme"
        )
    return value


class SmtpServer(StrictModel):
    """One SMTP relay. Its password comes from the environment variable `password_env`."""

    name: Text = "smtp"
    host: Annotated[Text, AfterValidator(_host)]
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: Text | None = None
    password_env: str = Field("NEWSLETTER_SMTP_PASSWORD", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: float = Field(30.0, gt=0, le=3600)
    connections: int = Field(4, ge=1, le=64)
    rate: Rate | None = None


class Sending(StrictModel):
    """How `newsletter send` delivers."""

    transport: Literal["outbox", "smtp"] = "outbox"
    outbox: str = "outbox"
    max_attempts: int = Field(3, ge=1, le=20)
    retry_delay: float = Field(2.0, ge=0)
    max_consecutive_failures: int = Field(20, ge=1)
    batch_size: int = Field(500, ge=1, le=100_000)
    unsubscribe_mailto: Email | None = None
    bounce_domain: Domain | None = None  # the envelope (MAIL FROM) domain, for `doctor`


def _origin(value: str) -> str:
    """`scheme://host[:port]`, lower-case, as browsers send it in the Origin header."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"'{value}' is not an origin such as https://www.example.org")
    return f"{parts.scheme}://{parts.netloc}".lower()


Origin = Annotated[str, AfterValidator(_origin)]


class Web(StrictModel):
    """`newsletter serve`: limits of the sign-up and unsubscribe pages, and who may use them."""

    site: str = "site"
    confirm_days: float = Field(7, gt=0)
    subscribe_per_ip: Rate = "10/h"
    subscribe_per_address: Rate = "3/h"
    max_body_bytes: int = Field(8192, ge=512)
    #: Sites whose pages may post the sign-up form (`newsletter embed`) and frame /subscribe.
    embed_origins: list[Origin] = Field(default_factory=list)
    #: Host names served besides base_url's and the loopback names (no DNS rebinding).
    allowed_hosts: list[str] = Field(default_factory=list)
    #: Addresses (or networks) of reverse proxies whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Seconds a request waits for the database's write lock before an unsubscribe is
    #: journaled (and applied later) instead.
    lock_wait: float = Field(3.0, gt=0, le=60)
    #: Seconds a client has to send a whole request; slower or idle connections are closed.
    request_timeout: float = Field(10.0, gt=0, le=300)


class Topic(StrictModel):
    """Something readers can choose on their preferences page: a tag behind a description."""

    name: HeaderText
    description: Text
    tag: HeaderText


class Inbound(StrictModel):
    """What comes back: where bounces arrive and what they do to readers.

    With `[sending] bounce_domain` set, each copy's envelope sender is
    `bounces+<token>@bounce_domain` (VERP), so every bounce names its copy. Passwords and keys
    come from the environment variables named here, never from this file.
    """

    soft_bounce_limit: int = Field(3, ge=1, le=100)
    soft_bounce_window: int = Field(5, ge=1, le=100)
    pause_complaint_rate: float = Field(0.001, gt=0, le=1)
    pause_hard_bounce_rate: float = Field(0.05, gt=0, le=1)
    pause_min_sent: int = Field(200, ge=1)
    imap_host: str | None = None
    imap_port: int = Field(993, ge=1, le=65535)
    imap_tls: bool = True
    imap_username: str | None = None
    imap_password_env: str = "NEWSLETTER_IMAP_PASSWORD"
    imap_folder: str = "INBOX"
    imap_processed: str = "Newsletter/Processed"
    imap_unrecognised: str = "Newsletter/Unrecognised"
    listen: bool = False  # `serve` also runs the listener
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(8025, ge=1, le=65535)
    listen_lmtp: bool = True
    ses_topics: list[str] = Field(default_factory=list)
    postmark_username: str = "newsletter"
    postmark_password_env: str = "NEWSLETTER_POSTMARK_WEBHOOK_PASSWORD"
    mailgun_signing_key_env: str = "NEWSLETTER_MAILGUN_SIGNING_KEY"
    sendgrid_public_key_env: str = "NEWSLETTER_SENDGRID_PUBLIC_KEY"


def _zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'{name}' is not a time zone; write it like Europe/Paris or UTC"
        ) from None
    return name


class Schedule(StrictModel):
    """`send --at` and `newsletter worker`: the time zone of given times, and how late is late."""

    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    grace_minutes: float = Field(60, ge=0)
    poll_seconds: float = Field(10, gt=0, le=3600)


class Publish(StrictModel):
    """`newsletter publish`: where the site goes, a folder or a command (`{site}` is the site)."""

    folder: str | None = None
    command: str | None = None
    timeout: float = Field(600, gt=0)
    check_urls: bool = True


class Dkim(StrictModel):
    """DKIM signing: the private key file lives outside the repository."""

    selector: Text
    key_file: Text
    domain: str | None = None


class Analytics(StrictModel):
    """What `serve` counts for `newsletter report`; nothing is ever counted per reader."""

    clicks: bool = False
    opens: bool = False


class Welcome(StrictModel):
    """The welcome email: an issue folder sent once to each subscriber when they join."""

    issue: str | None = None

    def slug(self) -> str | None:
        """The welcome issue's slug (its folder's name), if there is one."""
        return Path(self.issue).name if self.issue else None


class Config(StrictModel):
    """The project's settings. `root` is the folder that holds newsletter.toml."""

    name: HeaderText
    base_url: WebUrl
    postal_address: Text
    sender: Sender
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    reason: Text = "You are receiving this because you subscribed to our newsletter."
    logo: str | None = None
    #: What the newsletter is, in a sentence or two: shown on the sign-up page and the archive,
    #: and in the archive's meta tags.
    description: Text | None = None
    topics: list[Topic] = Field(default_factory=list)
    brand: Brand = Brand()
    database: str = "newsletter.db"
    secret_file: str = ".newsletter/secret.key"
    sending: Sending = Sending()
    smtp: list[SmtpServer] = Field(default_factory=list)
    dkim: Dkim | None = None
    web: Web = Web()
    inbound: Inbound = Inbound()
    analytics: Analytics = Analytics()
    schedule: Schedule = Schedule()
    publish: Publish = Publish()
    welcome: Welcome = Welcome()
    root: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _relays_fit(self) -> Self:
        names = [server.name for server in self.smtp]
        if len(set(names)) != len(names):
            raise ValueError(f"[[smtp]] relays need different names; they are {names}")
        if self.sending.transport == "smtp" and not self.smtp:
            raise ValueError(
                'sending.transport is "smtp" but no relay is configured; '
                "add an [[smtp]] table or use the outbox"
            )
        return self

    @field_validator("database")
    @classmethod
    def _database_without_password(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        try:
            Locale.parse(value, sep="-")
        except (ValueError, UnknownLocaleError):
            raise ValueError(
                f"unknown language '{value}': use a language code such as 'en', 'fr' or 'pt-BR'"
            ) from None
        return value

    def path(self, value: str) -> Path:
        """A path from the config, relative to the project root unless absolute."""
        return self.root / Path(value).expanduser()

    @property
    def database_location(self) -> Path | str:
        """Where the database is: a `postgresql://` URL, or the SQLite file's path."""
        if self.database.startswith(("postgresql://", "postgres://")):
            return self.database
        return self.path(self.database)

    @property
    def sender_domain(self) -> str:
        """The domain of the sender's address (for Message-IDs and List-Id)."""
        return self.sender.address.rpartition("@")[2]

    @property
    def base_path(self) -> str:
        """The path of base_url without its final '/' ('' at a domain's root): where the site's
        pages are, behind a proxy that forwards the path."""
        return urlsplit(self.base_url).path.rstrip("/")

    @property
    def base_origin(self) -> str:
        """`scheme://host[:port]` of base_url."""
        return _origin(self.base_url.removesuffix(urlsplit(self.base_url).path))

    def topic(self, name: str) -> Topic:
        """The topic called `name` (ignoring case); ConfigError naming the known ones."""
        for topic in self.topics:
            if topic.name.casefold() == name.strip().casefold():
                return topic
        known = ", ".join(t.name for t in self.topics) or "none are configured ([[topics]])"
        raise ConfigError(
            Problem(f"no topic named '{name}'; the topics: {known}", code="unknown-topic")
        )

    def issue_url(self, slug: str) -> str:
        """Where an issue's web copy and images are published."""
        return f"{self.base_url.rstrip('/')}/{slug}/"


def _known(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [name for name in model.model_fields if name != "root"]


def parse_config(text: str, path: Path) -> Config:
    """Parse and validate the text of a newsletter.toml; raise ConfigError naming each problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise ConfigError(
            Problem(f"not valid TOML: {exc}", path=path, line=line, code="toml-syntax")
        ) from None
    data.pop("root", None)
    try:
        return Config(**data, root=path.parent)
    except ValidationError as exc:
        raise ConfigError(*problems_from(exc, path, lambda loc: _known(Config, loc))) from None


def find_config(start: Path) -> Path:
    """The newsletter.toml in `start` or its nearest parent folder."""
    for folder in (start.resolve(), *start.resolve().parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        Problem(
            f"no {CONFIG_NAME} found in {start.resolve()} or its parents; "
            "run from your project folder or pass --config PATH",
            code="no-config",
        )
    )


def _dkim_problem(message: str) -> ConfigError:
    return ConfigError(Problem(message, field="dkim.key_file", code="bad-dkim-key"))


def read_dkim_key(config: Config) -> bytes | None:
    """The configured DKIM private key, checked, or None without [dkim]. ConfigError (one
    line) if the file is inside the project (it could be committed), unreadable, or not an
    RSA or Ed25519 private key that can sign."""
    if config.dkim is None:
        return None
    from newsletter.deliver.dkimsign import load_signing_key  # cryptography: only when used

    path = config.path(config.dkim.key_file).resolve()
    if path.is_relative_to(config.root.resolve()):
        raise _dkim_problem(
            f"{path} is inside the project; keep the DKIM private key outside it "
            "so it can never be committed"
        )
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise _dkim_problem(f"cannot read {path}: {exc.strerror}") from None
    try:
        load_signing_key(key)
    except ValueError as exc:
        raise _dkim_problem(
            f"{path} is not a DKIM private key: it is {exc}; use an unencrypted RSA key in PEM "
            "(openssl genrsa 2048) or an Ed25519 key (PEM, or the seed dknewkey writes)"
        ) from None
    return key


def load_config(path: Path | None = None, start: Path = Path(".")) -> Config:
    """Read the config at `path`, or find it from `start` upwards; a DKIM key is read and
    checked too, so that a broken one stops every command before it does anything."""
    path = path or find_config(start)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            Problem(f"cannot read it: {exc.strerror}", path=path, code="unreadable-file")
        ) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            Problem("is not UTF-8 text; save it as UTF-8", path=path, line=line, code="not-utf8")
        ) from None
    config = parse_config(text, path)
    read_dkim_key(config)
    return config
