"""Reading inbound mail from Maildir, mbox, a folder of .eml files, and a real Dovecot IMAP server
(Debian's dovecot-imapd, started here in a temp folder on a loopback port as an unprivileged
user)."""

from __future__ import annotations

import grp
import mailbox
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from imapclient import IMAPClient

from newsletter.errors import InputError, MailSourceError
from newsletter.inbound.classify import classify
from newsletter.inbound.sources import HANDLED_KEYWORD, ImapMailbox, ImapSettings, read_path


def _mail(subject: str, body: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = headers.pop("sender", "reader@example.com")
    message["To"] = "bounces@example.org"
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


BOUNCE = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
    b"To: bounces@example.org\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
    b"--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
    b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
    b"Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: User unknown\n--b--\n"
)
AUTO_REPLY = _mail("Out of office", "Back on Monday.\n", Auto_Submitted="auto-replied")
OTHER = _mail("Thanks", "Loved the issue.\n")


def test_maildir_mbox_and_eml_folder(tmp_path: Path) -> None:
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box = mailbox.mbox(tmp_path / "inbox.mbox", create=True)
    for raw in (BOUNCE, AUTO_REPLY):
        maildir.add(raw)
        box.add(raw)
    box.flush()
    emls = tmp_path / "emls"
    emls.mkdir()
    (emls / "a.eml").write_bytes(BOUNCE)
    (emls / "b.eml").write_bytes(AUTO_REPLY)
    (emls / "notes.txt").write_text("not mail")
    for path in (tmp_path / "Maildir", tmp_path / "inbox.mbox", emls):
        kinds = sorted(classify(m.raw).kind for m in read_path(path))
        assert kinds == ["auto-reply", "bounce"], path
    assert [m.key for m in read_path(emls)] == ["a.eml", "b.eml"]


def test_a_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such Maildir"):
        list(read_path(tmp_path / "nowhere"))


# --- a real Dovecot -----------------------------------------------------------------------------

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{root}/mail/%u
default_internal_user = {user}
default_login_user = {user}
default_internal_group = {group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def dovecot() -> Iterator[ImapSettings]:
    """A Dovecot IMAP server on 127.0.0.1 with one user, stopped afterwards."""
    if not os.access(DOVECOT, os.X_OK):
        pytest.skip("Debian's dovecot-imapd is not installed (make browser installs it as root)")
    account = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    with tempfile.TemporaryDirectory(prefix="newsletter-dovecot-") as folder:
        root = Path(folder)
        password = secrets.token_urlsafe(12)
        port = _free_port()
        (root / "passwd").write_text(f"reader:{{PLAIN}}{password}\n")
        (root / "dovecot.conf").write_text(
            CONFIG.format(
                root=root,
                user=account.pw_name,
                group=grp.getgrgid(account.pw_gid).gr_name,
                uid=account.pw_uid,
                gid=account.pw_gid,
                port=port,
            )
        )
        for name in ("run", "state", "mail", "home"):
            (root / name).mkdir()
        for path in (root, *root.rglob("*")):
            os.chown(path, account.pw_uid, account.pw_gid)
        server = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    _, errors = server.communicate(timeout=10)
                    pytest.skip(f"dovecot did not start: {errors.decode(errors='replace')[-500:]}")
                time.sleep(0.05)
            yield ImapSettings("127.0.0.1", "reader", password, port=port, ssl=False, timeout=10)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


def _fill(settings: ImapSettings, *messages: bytes) -> None:
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=10) as client:
        client.login(settings.username, settings.password)
        for folder in ("INBOX", settings.processed, settings.unrecognised):
            if client.folder_exists(folder):
                client.select_folder(folder)
                uids = client.search("ALL")
                if uids:
                    client.delete_messages(uids)  # the test's own clean-up between tests
                    client.expunge()
        for raw in messages:
            client.append("INBOX", raw)


def _counts(settings: ImapSettings) -> dict[str, int]:
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=10) as client:
        client.login(settings.username, settings.password)
        folders = ("INBOX", settings.processed, settings.unrecognised)
        return {f: int(client.folder_status(f, ["MESSAGES"])[b"MESSAGES"]) for f in folders}


def test_imap_moves_handled_and_unrecognised_mail_and_deletes_nothing(
    dovecot: ImapSettings,
) -> None:
    _fill(dovecot, BOUNCE, AUTO_REPLY, OTHER)
    with ImapMailbox(dovecot) as box:
        seen = []
        for message in box.messages():
            decision = classify(message.raw)
            seen.append(decision.kind)
            if decision.kind == "bounce":
                box.processed(message.key)
            elif decision.kind == "unclassified":
                box.set_aside(message.key)
    assert seen == ["bounce", "auto-reply", "unclassified"]
    assert _counts(dovecot) == {"INBOX": 1, dovecot.processed: 1, dovecot.unrecognised: 1}
    with ImapMailbox(dovecot) as box:
        left = [classify(m.raw).kind for m in box.messages()]
    assert left == ["auto-reply"]


def test_imap_without_move_copies_and_keeps_the_original(
    dovecot: ImapSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(dovecot, BOUNCE)
    monkeypatch.setattr(IMAPClient, "has_capability", lambda self, name: name != "MOVE")
    with ImapMailbox(dovecot) as box:
        (message,) = list(box.messages())
        box.processed(message.key)
        assert list(box.messages()) == []  # tagged handled, so not read again
        flags = box.client.get_flags([int(message.key)])[int(message.key)]
        assert HANDLED_KEYWORD.encode() in flags
    assert _counts(dovecot) == {"INBOX": 1, dovecot.processed: 1, dovecot.unrecognised: 0}


def test_imap_wrong_password_and_closed_port_are_clear_errors(dovecot: ImapSettings) -> None:
    wrong = ImapSettings(dovecot.host, dovecot.username, "wrong", port=dovecot.port, ssl=False)
    with pytest.raises(MailSourceError, match="refused"), ImapMailbox(wrong):
        pass
    secret = "pässwörd-€-secret"
    accented = ImapSettings(dovecot.host, dovecot.username, secret, port=dovecot.port, ssl=False)
    with pytest.raises(MailSourceError) as caught, ImapMailbox(accented):
        pass  # the encoding error would name the character and its position: never shown
    assert caught.value.code == "imap-login-refused" and "beyond ASCII" in str(caught.value)
    message = str(caught.value)
    assert "position" not in message and not any(char in message for char in "äö€")
    closed = ImapSettings("127.0.0.1", "reader", "x", port=_free_port(), ssl=False, timeout=5)
    with pytest.raises(MailSourceError, match="cannot connect"), ImapMailbox(closed):
        pass
