"""DKIM signatures made through OpenSSL verify with dkimpy's verifier: RSA and Ed25519."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from newsletter.deliver.dkimsign import load_signing_key
from newsletter.deliver.message import DkimKey
from newsletter.errors import ConfigError

PEM = serialization.Encoding.PEM
RAW = serialization.Encoding.Raw
DER = serialization.Encoding.DER
NO_PASSWORD = serialization.NoEncryption()

MESSAGES = [
    b"From: News <news@example.org>\r\nTo: ann@example.com\r\nSubject: Hello\r\n"
    b"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi Ann.\r\n",
    # folded and oddly spaced headers, an encoded word, trailing blank lines in the body
    b"From: =?utf-8?q?Zo=C3=A9?= <zoe@example.org>\r\nTo:   bob@example.com ,\r\n"
    b"\t carl@example.com\r\nSubject:  A  long\r\n subject\t line\r\n"
    b"List-Unsubscribe: <https://example.org/u/abc>,\r\n <mailto:u@example.org?subject=x>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Caf\xc3\xa9  \t</p>\r\n\r\n\r\n",
    # an empty body
    b"From: news@example.org\r\nTo: dan@example.com\r\nSubject: Empty\r\n\r\n",
    # bare LF line ends, as a file on disk may have them
    b"From: news@example.org\nTo: eve@example.com\nSubject: LF\n\nOne line\nTwo lines\n",
]


def rsa_key(bits: int, fmt: serialization.PrivateFormat) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public = key.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return key.private_bytes(PEM, fmt, NO_PASSWORD), record


def ed25519_key(seed: bool = False) -> tuple[bytes, bytes]:
    """A PEM key, or with `seed` dkimpy's form of it (`dknewkey --ktype ed25519`): its seed."""
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    if seed:
        raw = key.private_bytes(RAW, serialization.PrivateFormat.Raw, NO_PASSWORD)
        return base64.b64encode(raw) + b"\n", record
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD), record


KEYS: dict[str, Callable[[], tuple[bytes, bytes]]] = {
    "rsa-1024-pkcs1": lambda: rsa_key(1024, serialization.PrivateFormat.TraditionalOpenSSL),
    "rsa-2048-pkcs8": lambda: rsa_key(2048, serialization.PrivateFormat.PKCS8),
    "ed25519": ed25519_key,
    "ed25519-seed": lambda: ed25519_key(seed=True),
}


def dns_for(record: bytes) -> Callable[..., bytes]:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"nl._domainkey.example.org."
        return record

    return dns


@pytest.mark.parametrize("kind", list(KEYS))
@pytest.mark.parametrize("number", range(len(MESSAGES)))
def test_every_signature_verifies_and_tampering_breaks_it(kind: str, number: int) -> None:
    pem, record = KEYS[kind]()
    message = MESSAGES[number]
    signed = DkimKey("nl", "example.org", pem).sign(message)
    assert signed.endswith(message)
    algorithm = b"a=ed25519-sha256" if kind.startswith("ed25519") else b"a=rsa-sha256"
    assert signed.startswith(b"DKIM-Signature: v=1; " + algorithm)
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    head, _, body = signed.partition(b"\r\n\r\n")
    assert not dkim.verify(head + b"\r\n\r\n" + body + b"P.S.\r\n", dnsfunc=dns_for(record))
    forged = signed.replace(b"To: ", b"To: eve@example.net, ", 1)
    assert not dkim.verify(forged, dnsfunc=dns_for(record))


def test_the_signature_has_the_fields_dkimpy_writes() -> None:
    pem, record = rsa_key(1024, serialization.PrivateFormat.PKCS8)
    ours = DkimKey("nl", "example.org", pem).sign(MESSAGES[0])
    theirs = dkim.sign(
        MESSAGES[0], b"nl", b"example.org", pem, include_headers=list(DkimKey._HEADERS)
    )

    def tags(signed: bytes) -> dict[bytes, bytes]:
        header = signed.split(b"\r\n\r\n", 1)[0].split(b"\r\nFrom:", 1)[0]
        parsed = dkim.util.parse_tag_value(header.split(b":", 1)[1])
        return {name: value for name, value in parsed.items() if name not in (b"b", b"t")}

    assert tags(ours) == tags(theirs + MESSAGES[0])
    assert dkim.verify(theirs + MESSAGES[0], dnsfunc=dns_for(record))


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (b"not a key", "not a PEM private key"),
        (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD
            ),
            "neither an RSA nor an Ed25519 key",
        ),
    ],
)
def test_a_key_that_cannot_sign_is_a_config_error(pem: bytes, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        DkimKey("nl", "example.org", pem)
    assert caught.value.problems[0].field == "dkim.key_file"
    with pytest.raises(ValueError, match=reason):
        load_signing_key(pem)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the short RSA key")
def test_a_short_rsa_key_is_refused() -> None:
    pem = subprocess.run(
        ["openssl", "genrsa", "512"], check=True, capture_output=True
    ).stdout  # cryptography itself no longer makes keys this short
    with pytest.raises(ConfigError, match="an RSA key of 512 bits; use 1024 or more"):
        DkimKey("nl", "example.org", pem)
