"""Site configuration: `newsletter.toml` read, validated and turned into a frozen Config."""

from __future__ import annotations

import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from newsletter.errors import ConfigError, Problem
from newsletter.validation import Email, HeaderText, Rate, StrictModel, Text, WebUrl, problems_from

CONFIG_NAME = "newsletter.toml"


class Sender(StrictModel):
    """Who the newsletter comes from."""

    name: HeaderText
    address: Email
    reply_to: Email | None = None


class Brand(StrictModel):
    """Colours of the email; each a CSS colour such as '#1d6f5f'."""

    accent: str = Field("#c2410c", pattern=r"^#[0-9a-fA-F]{6}$")
    text: str = Field("#1f2328", pattern=r"^#[0-9a-fA-F]{6}$")
    muted: str = Field("#5b636e", pattern=r"^#[0-9a-fA-F]{6}$")
    background: str = Field("#f3efe6", pattern=r"^#[0-9a-fA-F]{6}$")
    card: str = Field("#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")


class SmtpServer(StrictModel):
    """One SMTP relay. Its password comes from the environment variable `password_env`."""

    name: str = "smtp"
    host: Text
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str = "NEWSLETTER_SMTP_PASSWORD"
    timeout: float = Field(30.0, gt=0)
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


class Web(StrictModel):
    """`newsletter serve`: limits of the sign-up and unsubscribe pages."""

    site: str = "site"
    confirm_days: float = Field(7, gt=0)
    subscribe_per_ip: Rate = "10/h"
    subscribe_per_address: Rate = "3/h"
    max_body_bytes: int = Field(8192, ge=512)


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


class Config(StrictModel):
    """The project's settings. `root` is the folder that holds newsletter.toml."""

    name: HeaderText
    base_url: WebUrl
    postal_address: Text
    sender: Sender
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    reason: Text = "You are receiving this because you subscribed to our newsletter."
    logo: str | None = None
    brand: Brand = Brand()
    database: str = "newsletter.db"
    secret_file: str = ".newsletter/secret.key"
    sending: Sending = Sending()
    smtp: list[SmtpServer] = Field(default_factory=list)
    dkim: Dkim | None = None
    web: Web = Web()
    schedule: Schedule = Schedule()
    publish: Publish = Publish()
    root: Path = Field(Path("."), exclude=True)

    def path(self, value: str) -> Path:
        """A path from the config, relative to the project root unless absolute."""
        return self.root / Path(value).expanduser()

    @property
    def sender_domain(self) -> str:
        """The domain of the sender's address (for Message-IDs and List-Id)."""
        return self.sender.address.rpartition("@")[2]

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
        raise ConfigError(Problem(f"not valid TOML: {exc}", path=path, line=line)) from None
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
            "run from your project folder or pass --config PATH"
        )
    )


def load_config(path: Path | None = None, start: Path = Path(".")) -> Config:
    """Read the config at `path`, or find it from `start` upwards."""
    path = path or find_config(start)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(Problem(f"cannot read it: {exc.strerror}", path=path)) from None
    return parse_config(text, path)
