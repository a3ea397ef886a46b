"""DKIM signatures (RFC 6376) made through OpenSSL: rsa-sha256, or ed25519-sha256 (RFC 8463).

dkimpy signs RSA with pure-Python arithmetic, about 17 ms of CPU a message. Here dkimpy still
parses the message, canonicalises it (relaxed headers, simple body), selects and hashes the
signed header fields and folds the header, exactly as its own `sign` does; only the signature
over the header hash is made by the `cryptography` package (OpenSSL), well under a millisecond.
The key's type chooses the algorithm; an Ed25519 key may be PEM or dkimpy's base64 seed.
tests/test_dkim.py checks every kind of signature with dkimpy's verifier.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Sequence

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

SigningKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
HEADER_NAME = b"DKIM-Signature"
CANONICALIZATION = b"relaxed/simple"
#: Receivers (and dkimpy's verifier) refuse RSA keys shorter than this.
MIN_RSA_BITS = 1024
ED25519_SEED_BYTES = 32


@functools.lru_cache(maxsize=8)  # config load checks the key, the sender loads it again
def load_signing_key(data: bytes) -> SigningKey:
    """An RSA or Ed25519 private key from PEM (PKCS#1 or PKCS#8), or an Ed25519 key in
    dkimpy's form (the base64 seed `dknewkey --ktype ed25519` writes); ValueError says what
    is wrong."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        seed = _ed25519_seed(data)
        if seed is None:
            raise ValueError(
                "not a PEM private key without a passphrase, nor an Ed25519 seed"
            ) from None
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    except UnsupportedAlgorithm:
        raise ValueError("an unsupported kind of key; use RSA or Ed25519") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits; use {MIN_RSA_BITS} or more")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError("neither an RSA nor an Ed25519 key; DKIM signs with those two")


def _ed25519_seed(data: bytes) -> bytes | None:
    """The 32-byte seed of an Ed25519 key written as base64 (dkimpy's form), else None."""
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        return None
    return seed if len(seed) == ED25519_SEED_BYTES else None


def algorithm_of(key: SigningKey) -> bytes:
    """The DKIM algorithm (a=) a signature with `key` carries."""
    return b"ed25519-sha256" if isinstance(key, ed25519.Ed25519PrivateKey) else b"rsa-sha256"


def _sign_digest(key: SigningKey, digest: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the header hash input
    return key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def _parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's (headers, body) of a message, its header lines alone parsed when the message
    has CRLF line ends only: dkimpy's parser splits the whole message into lines, which costs
    more than the signature, to rejoin the body with the CRLFs it already has."""
    head, blank, body = message.partition(b"\r\n\r\n")
    if blank and message.count(b"\n") == message.count(b"\r\n"):
        return dkim.rfc822_parse(head + blank)[0], body
    return dkim.rfc822_parse(message)  # type: ignore[no-any-return]


def signature_header(
    message: bytes,
    selector: bytes,
    domain: bytes,
    key: SigningKey,
    include_headers: Sequence[bytes],
    timestamp: int | None = None,
) -> bytes:
    """The DKIM-Signature header line (CRLF-terminated) that signs `message` for `domain`."""
    headers, body = _parse(message)
    policy = dkim.CanonicalizationPolicy.from_c_value(CANONICALIZATION)
    body_hash = base64.b64encode(hashlib.sha256(policy.canonicalize_body(body)).digest())
    algorithm = algorithm_of(key)
    included = tuple(name.lower() for name in include_headers)
    fields = [
        (b"v", b"1"),
        (b"a", algorithm),
        (b"c", CANONICALIZATION),
        (b"d", domain),
        (b"i", b"@" + domain),
        (b"q", b"dns/txt"),
        (b"s", selector),
        (b"t", str(int(time.time()) if timestamp is None else timestamp).encode("ascii")),
        (b"h", b" : ".join(included)),
        (b"bh", body_hash),
        (b"b", b"0" * 60),  # as dkimpy does: puts b= on a line of its own before hashing
    ]
    unsigned = dkim.fold(b"; ".join(b"=".join(field) for field in fields), len(HEADER_NAME))
    unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
    hasher = hashlib.sha256()
    dkim.hash_headers(
        hasher,
        policy,
        policy.canonicalize_headers(headers),
        included,
        (HEADER_NAME, b" " + unsigned),
        dict(fields),
    )
    fields[-1] = (b"b", base64.b64encode(_sign_digest(key, hasher.digest())))
    value = b"; ".join(b"=".join(field) for field in fields) + b"\r\n"
    return HEADER_NAME + b": " + bytes(dkim.fold(value, len(HEADER_NAME)))
