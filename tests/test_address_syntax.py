"""The fast path for plain addresses agrees with email-validator on every address tried."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from newsletter import address_syntax
from newsletter.address_syntax import ROLE_MAILBOXES, AddressError, normal_address, plain_address

LOCAL_64 = "a" * 64
LABEL_63 = "d" * 63

VARIED = [
    "ann@example.com", "Ann@Example.COM", "ann.lee@example.co.uk", "ann+news@example.org",
    "a@b.co", "x@y.z", "first.last@sub.domain.example.com", "o'brien@example.ie",
    "user!#$%&'*+/=?^_`{|}~-@example.com", "1234567890@example.com", "ann@123.example.com",
    "ann@example.c0m", "ann@example.123", "ann@example.com.", "ann@.example.com",
    "ann@example..com", ".ann@example.com", "ann.@example.com", "an..n@example.com",
    "ann@-example.com", "ann@example-.com", "ann@ex-ample.com", "ann@ex--ample.com",
    "ann@ab--cd.com", "ann@xn--bcher-kva.de", "ann@xn--80ak6aa92e.com", "ann@exa_mple.com",
    "ann@localhost", "ann@example.test", "ann@sub.example.test", "ann@example.local",
    "ann@example.onion", "ann@example.invalid", "ann@10.in-addr.arpa", "ann@contest.com",
    "ann@latest", "ann@example.localhost", "ann@[192.0.2.1]", '"ann lee"@example.com',
    '"ann"@example.com', "ann lee@example.com", " ann@example.com", "ann@example.com ",
    "ann@@example.com", "ann@", "@example.com", "", "@", "ann", "ann@exam ple.com",
    "anné@example.com", "ann@bücher.de", "ann@BÜCHER.de", "josé.garcía@example.es",
    "ann@example.com\n", "ann\r\n@example.com", "ann@example.com\x00", "ann@ex\tample.com",
    # fullwidth letters, which Unicode normalisation turns into ASCII ones
    "\uff21\uff2e\uff2e@example.com", "ann@example.\uff23\uff2f\uff2d",
    "ann@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    f"{LOCAL_64}@example.com", f"{LOCAL_64}a@example.com", f"ann@{LABEL_63}.com",
    f"ann@{LABEL_63}d.com", f"ann@{'.'.join([LABEL_63] * 3)}.com",
    f"ann@{'.'.join([LABEL_63] * 4)}.com", f"{LOCAL_64}@{'.'.join(['e' * 60] * 3)}.com",
    f"{LOCAL_64}@{'.'.join(['e' * 61] * 3)}.com", "ann@example.co" + "m" * 61,
    "ann@example." + "c" * 63, "ann@example." + "c" * 64, "ANN@EXAMPLE.COM",
    "ann@example.museum", "ann@a.b.c.d.e.f.g.h", "a.b.c@d.e.f", "ann@example.c",
    # role accounts, whose local part email-validator writes in lower case
    "Postmaster@Example.com", "INFO@example.com", "News@example.org", "info.x@example.com",
    "Sales@bücher.de", "ABUSE@[192.0.2.1]", "WWW@example.com", "MAILER-DAEMON@example.com",
    # plain local parts at internationalised (or otherwise not plain) domains
    "p1@bücher.de", "P.2@BÜCHER.DE", "x+y@bücher.example", "ann@ü.test", "ann@bücher",
    "ann@bü--cher.de", "ann@xn--zz.de", "ann@xn--bcher-kva.example", "ann@😀.com",
    "ann@ﬁsh.com", "ann@例え.テスト", "ann@пример.рф", "ann@bücher.de.", "ann@.bücher.de",
    "ann@bü_cher.de", "ann@bü cher.de", "ann@bücher.d", "ann@bücher.123", "a@b@bücher.de",
    "ann@bücher.de\n", "ann@bü\u200dcher.de", "ann@ex--ample.com", "ann@exa_mple.com",
    f"{LOCAL_64}@{'ü' * 40}.{'e' * 60}.{'e' * 60}.com",
    f"{LOCAL_64}@{'ü' * 50}.{'e' * 60}.{'e' * 60}.com",
    f"{LOCAL_64}@{'ü' * 60}.{'ü' * 60}.com", f"{LOCAL_64}a@bücher.de",
]  # fmt: skip


def expected(address: str) -> str | None:
    """email-validator's normal form, or None if it refuses the address."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def ours(address: str) -> str | None:
    try:
        return normal_address(address)
    except AddressError:
        return None


def fuzzed(count: int) -> list[str]:
    """Addresses built from pieces that sit near the rules' edges, the same on every run."""
    pick = random.Random(20261124)
    locals_ = ["ann", "Ann.Lee", "a", "a.", ".a", "a..b", "x+y", "o'b", "é", "a b", "_", "-"]
    locals_ += ["Info", "NEWS", "postmaster", "Support"]
    labels = ["example", "Ex-ample", "e", "-e", "e-", "ab--c", "xn--e", "123", "bü", "e_e"]
    labels += ["BÜ", "ü" * 30, "пример", "例え", "e" * 60]
    tlds = ["com", "COM", "c", "co1", "test", "local", "de", "xn--p1ai", "onion", "org."]
    found = []
    for _ in range(count):
        local = "".join(pick.choice(locals_) for _ in range(pick.randint(1, 3)))
        domain = ".".join(pick.choice(labels) for _ in range(pick.randint(0, 3)))
        tld = pick.choice(tlds)
        found.append(f"{local}@{domain}.{tld}" if domain else f"{local}@{tld}")
    return found


@pytest.mark.parametrize("address", VARIED + fuzzed(1500))
def test_same_verdict_and_normal_form_as_email_validator(address: str) -> None:
    assert ours(address) == expected(address)
    fast = plain_address(address)
    assert fast is None or fast == expected(address)


def test_most_plain_addresses_take_the_fast_path() -> None:
    plain = ["ann@example.com", "Ann.Lee+news@Example.co.uk", "o'brien@mail.example.ie"]
    assert [plain_address(address) for address in plain] == [
        "ann@example.com",
        "Ann.Lee+news@example.co.uk",
        "o'brien@mail.example.ie",
    ]


def test_the_reason_is_email_validators() -> None:
    with pytest.raises(AddressError, match="special-use or reserved name"):
        normal_address("ann@example.test")


def test_the_role_accounts_are_email_validators() -> None:
    assert frozenset(CASE_INSENSITIVE_MAILBOX_NAMES) == ROLE_MAILBOXES


def test_an_internationalised_domain_is_checked_once() -> None:
    address_syntax._domain_forms.cache_clear()
    found = [normal_address(f"p{n}@BÜCHER.de") for n in range(3)]
    assert found == [f"p{n}@bücher.de" for n in range(3)]
    info = address_syntax._domain_forms.cache_info()
    assert (info.misses, info.hits) == (1, 2)
