"""DKIM: does the key published at `<selector>._domainkey.<domain>` match the private key, and
which headers does a signature from `deliver.message.DkimKey` cover?

The public half is derived from the PEM private key with `cryptography` (RSA or Ed25519) and
compared with the record's `p=` (RSA as SubjectPublicKeyInfo or RSAPublicKey, Ed25519 as the
raw 32 bytes of RFC 8463). Coverage is read from the `h=` of a real signature on a sample.
"""

from __future__ import annotations

import base64
import binascii
import re

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.deliver.message import DkimKey
from newsletter.doctor.results import CheckResult, failed, passed, warned

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
#: The headers a one-click unsubscribe needs signed (RFC 8058 section 4) and the author.
MUST_SIGN = ("from", "list-unsubscribe", "list-unsubscribe-post")
KEY_NAME = "DKIM key"
SIGNATURE_NAME = "DKIM signature"


class KeyProblem(Exception):
    """A key that cannot be read or is of a kind DKIM does not use."""


def tag_list(text: str) -> dict[str, str]:
    """The tags of a DKIM or DMARC record (`v=DKIM1; k=rsa; p=...`), names lower-cased.

    Folding white space inside a value is removed (it may split a long `p=`)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), re.sub(r"\s+", "", value))
    return tags


def public_key_of(pem: bytes) -> PublicKey:
    """The public half of a PEM private key (PKCS#1 or PKCS#8, RSA or Ed25519), or of an
    Ed25519 key in dkimpy's form (its base64 seed)."""
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        try:
            seed = base64.b64decode(pem.strip(), validate=True)
            return ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
        except (ValueError, TypeError):
            raise KeyProblem(f"not an unencrypted PEM private key ({exc})") from None
    public = private.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise KeyProblem(f"a {type(public).__name__}; DKIM uses RSA or Ed25519 keys")
    return public


def record_for(public: PublicKey) -> str:
    """The TXT record to publish for `public`."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def published_key(tags: dict[str, str]) -> PublicKey:
    """The key in a DKIM record's tags; KeyProblem if it is revoked or unreadable."""
    kind = tags.get("k", "rsa").lower()
    data = tags.get("p")
    if data is None:
        raise KeyProblem("the record has no p= tag")
    if not data:
        raise KeyProblem("the key is revoked (empty p=)")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise KeyProblem("p= is not valid base64") from None
    try:
        if kind == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        if kind == "rsa":
            key = serialization.load_der_public_key(raw)
            if isinstance(key, rsa.RSAPublicKey):
                return key
    except ValueError:
        pass
    raise KeyProblem(f"p= is not a valid {kind} public key")


def same_key(one: PublicKey, other: PublicKey) -> bool:
    """Whether two public keys are the same key."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return one.public_bytes(*fmt) == other.public_bytes(*fmt)


def _describe(key: PublicKey) -> str:
    return f"RSA {key.key_size}-bit" if isinstance(key, rsa.RSAPublicKey) else "Ed25519"


def key_verdict(location: str, private_pem: bytes, records: list[str]) -> CheckResult:
    """Judge the DKIM records found at `location` against the private key."""
    try:
        public = public_key_of(private_pem)
    except KeyProblem as exc:
        return failed(
            KEY_NAME,
            f"the private key file is {exc}",
            "point [dkim] key_file at the PEM private key whose public half you published",
        )
    record = f"a TXT record at {location}: {record_for(public)}"
    publish = f"publish {record}"
    records = [r for r in records if "p=" in r]
    if not records:
        return failed(KEY_NAME, f"no DKIM key (TXT with p=) at {location}", publish)
    if len(records) > 1:
        return failed(
            KEY_NAME, f"{len(records)} DKIM records at {location}", f"keep one; {publish}"
        )
    tags = tag_list(records[0])
    try:
        published = published_key(tags)
    except KeyProblem as exc:
        return failed(KEY_NAME, f"the record at {location}: {exc}", publish)
    if not same_key(published, public):
        return failed(
            KEY_NAME,
            f"the key at {location} ({_describe(published)}) is not the public half of "
            "[dkim] key_file: receivers will find every signature broken",
            f"replace it with {record}",
        )
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 1024:
        return failed(
            KEY_NAME,
            f"{_describe(public)} key at {location}: receivers ignore it",
            "make a 2048-bit RSA key and publish it under a new selector",
        )
    if "y" in tags.get("t", "").split(":"):
        return warned(
            KEY_NAME,
            f"the key at {location} is marked as testing (t=y)",
            "remove t=y once signatures verify",
        )
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        return warned(
            KEY_NAME,
            f"{_describe(public)} key at {location} matches, but is short",
            "move to a 2048-bit RSA key under a new selector",
        )
    return passed(KEY_NAME, f"the key at {location} ({_describe(public)}) matches key_file")


_SAMPLE = (
    b"From: Doctor <doctor@example.invalid>\r\nTo: reader@example.invalid\r\n"
    b"Subject: sample\r\nList-Unsubscribe: <https://example.invalid/unsubscribe/x>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nsample\r\n"
)


def signed_headers(key: DkimKey) -> tuple[str, tuple[str, ...]]:
    """The algorithm and the headers (h=) of a signature `key` puts on a sample message."""
    signed = key.sign(_SAMPLE)
    header = signed[: len(signed) - len(_SAMPLE)].decode("ascii")
    tags = tag_list(header.partition(":")[2])
    return tags.get("a", ""), tuple(h for h in tags.get("h", "").lower().split(":") if h)


def signature_verdict(key: DkimKey) -> CheckResult:
    """Judge the signature the sender puts on each copy: it must cover MUST_SIGN."""
    try:
        algorithm, headers = signed_headers(key)
    except dkim.DKIMException as exc:
        return failed(
            SIGNATURE_NAME,
            f"the sender cannot sign with this key ({type(exc).__name__}: {exc})",
            "point [dkim] key_file at an RSA private key (2048 bits, PEM) or an Ed25519 one "
            "(PEM, or the base64 seed dknewkey writes)",
        )
    missing = [name for name in MUST_SIGN if name not in headers]
    covered = ", ".join(headers)
    if missing:
        return failed(
            SIGNATURE_NAME,
            f"{algorithm} signature leaves out {', '.join(missing)} (covers {covered})",
            "sign From, List-Unsubscribe and "
            "List-Unsubscribe-Post (RFC 8058) in deliver/message.py",
        )
    return passed(
        SIGNATURE_NAME, f"{algorithm}, d={key.domain}, s={key.selector}, covers {covered}"
    )
