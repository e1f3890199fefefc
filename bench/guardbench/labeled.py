"""The seeded labeled PII set: sentences with personal data and credentials, and the gold spans.

Values come from Faker (names, places, emails, phones, cards, SSNs, IBANs, IPs) and from the
vendors' published key formats (secrets); the sentences around them are this module's own
templates and Faker's English lorem. The detectors never see any of this: nothing under gateway/
imports it, so the benchmark measures recognizers against data they were not built from.
Clean samples (no PII, but order numbers, versions, prices, times) measure over-redaction.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker


@dataclass(frozen=True, slots=True)
class Gold:
    """`text[start:end]` is a `label` entity."""

    start: int
    end: int
    label: str


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    gold: tuple[Gold, ...]
    kind: str  # "pii" or "clean"


STRUCTURED = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
)
SECRETS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "STRIPE_KEY",
    "JWT",
    "PRIVATE_KEY",
    "PASSWORD",
)
NAMES_AND_PLACES = ("PERSON", "LOCATION")

PII_TEMPLATES = (
    "Hi, this is {PERSON}. You can reach me at {EMAIL_ADDRESS} or {PHONE_NUMBER}.",
    "Please charge the card {CREDIT_CARD} for this month's renewal.",
    "My social security number is {US_SSN}; what else do you need for the form?",
    "Transfer the deposit to IBAN {IBAN_CODE} before Friday.",
    "The server at {IP_ADDRESS} keeps timing out since the last deploy.",
    "{PERSON} moved to {LOCATION} last spring and really likes it there.",
    "Can you draft a reply to {PERSON} about the delayed shipment to {LOCATION}?",
    "Our office in {LOCATION} will be closed on Monday for maintenance.",
    "Send the signed contract to {EMAIL_ADDRESS} and copy {PERSON}.",
    "Call me back on {PHONE_NUMBER} after five, I'm in meetings until then.",
    "{PERSON} ({EMAIL_ADDRESS}) said the card {CREDIT_CARD} was declined in {LOCATION}.",
    "Ship it to {PERSON} in {LOCATION}. Phone for the courier: {PHONE_NUMBER}.",
    "Block traffic from {IP_ADDRESS} and tell {PERSON} when it's done.",
    "Update the payroll record: SSN {US_SSN}, account {IBAN_CODE}.",
    "Summarize this email from {PERSON}: the invoice was sent to {EMAIL_ADDRESS} twice.",
    "Here is my config, why does it fail? OPENAI_API_KEY={OPENAI_API_KEY}",
    'I set export ANTHROPIC_API_KEY="{ANTHROPIC_API_KEY}" but the client says unauthorized.',
    "[default]\naws_access_key_id = {AWS_ACCESS_KEY_ID}\n"
    "aws_secret_access_key = {AWS_SECRET_ACCESS_KEY}\nregion = us-east-1",
    "git push fails even with the token {GITHUB_TOKEN}, any idea?",
    "The alert bot posts with {SLACK_TOKEN} and started getting rate limited.",
    "We accidentally committed {STRIPE_KEY} to the repository, what should we do?",
    "The request had the header Authorization: Bearer {JWT} and still got a 401.",
    "This is the key file:\n{PRIVATE_KEY}\nWhy won't ssh accept it?",
    "DATABASE_URL=postgres://app:{PASSWORD}@db.internal:5432/orders is not connecting.",
    "Server=sql01;Database=crm;User Id=sa;Password={PASSWORD}; gives a login error.",
)

CLEAN_TEMPLATES = (
    "Order #{ORDER} shipped on time and should arrive within {DAYS} days.",
    "We upgraded to version {VERSION} and the build got {PCT}% faster.",
    "The invoice total is ${AMOUNT} including tax and shipping.",
    "Meeting room {ROOM} is booked from {TIME} to {TIME2} on the third floor.",
    "The package weighs {KG} kg and measures {DIM} cm.",
    "Error code {HEX} appears whenever the cache is full.",
    "Set the timeout to {MS} ms and retry {DAYS} times before giving up.",
    "See chapter {DAYS}, page {PAGE}: the results are in table {ROOM}.",
    "Ticket {ORDER} was closed after the fix in build {BUILD}.",
    "The recipe needs {KG} cups of flour and {DAYS} eggs, baked for {MS} seconds.",
)

_TEMPLATE_SLOT = re.compile(r"\{([A-Z_0-9]+)\}")
_BASE62 = string.ascii_letters + string.digits
_BASE32 = string.ascii_uppercase + "234567"


def labeled_set(seed: int, pii_samples: int, clean_samples: int) -> list[Sample]:
    """`pii_samples` sentences with entities (every template in turn) and `clean_samples`
    without, each with a Faker sentence of context before or after it, in a seeded order."""
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    values = _Values(fake, rng)
    samples: list[Sample] = []
    for index in range(pii_samples):
        template = PII_TEMPLATES[index % len(PII_TEMPLATES)]
        samples.append(_with_context(_fill(template, values.entity), "pii", fake, rng))
    for index in range(clean_samples):
        if index % 3 == 2:
            text = fake.paragraph(nb_sentences=2)  # plain prose, capitalized words included
        else:
            template = CLEAN_TEMPLATES[index % len(CLEAN_TEMPLATES)]
            text = _fill(template, values.number)[0]
        samples.append(_with_context((text, ()), "clean", fake, rng))
    rng.shuffle(samples)
    return samples


def _fill(template: str, value_of: Callable[[str], str]) -> tuple[str, tuple[Gold, ...]]:
    parts: list[str] = []
    gold: list[Gold] = []
    pos = length = 0
    for slot in _TEMPLATE_SLOT.finditer(template):
        literal = template[pos : slot.start()]
        parts.append(literal)
        length += len(literal)
        label = slot.group(1)
        value = value_of(label)
        parts.append(value)
        gold.append(Gold(length, length + len(value), label))
        length += len(value)
        pos = slot.end()
    parts.append(template[pos:])
    return "".join(parts), tuple(gold)


def _with_context(
    filled: tuple[str, tuple[Gold, ...]], kind: str, fake: Faker, rng: random.Random
) -> Sample:
    text, gold = filled
    if kind == "clean":
        gold = ()
    where = rng.random()
    if where < 0.4:
        prefix = fake.sentence() + " "
        shifted = tuple(Gold(g.start + len(prefix), g.end + len(prefix), g.label) for g in gold)
        return Sample(prefix + text, shifted, kind)
    if where < 0.8:
        return Sample(text + " " + fake.sentence(), gold, kind)
    return Sample(text, gold, kind)


class _Values:
    """Fresh values per label: Faker's, or built to the vendor's documented key format."""

    def __init__(self, fake: Faker, rng: random.Random) -> None:
        self.fake = fake
        self.rng = rng

    def entity(self, label: str) -> str:
        return getattr(self, label.lower())()

    def number(self, label: str) -> str:
        rng = self.rng
        return {
            "ORDER": lambda: str(rng.randint(10_000, 9_999_999)),
            "DAYS": lambda: str(rng.randint(2, 14)),
            "VERSION": lambda: f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
            "PCT": lambda: str(rng.randint(5, 60)),
            "AMOUNT": lambda: f"{rng.randint(10, 9_999):,}.{rng.randint(0, 99):02d}",
            "ROOM": lambda: str(rng.randint(100, 450)),
            "TIME": lambda: f"{rng.randint(8, 11)}:{rng.choice(('00', '15', '30', '45'))} am",
            "TIME2": lambda: f"{rng.randint(1, 5)}:{rng.choice(('00', '30'))} pm",
            "KG": lambda: f"{rng.randint(1, 40)}.{rng.randint(0, 9)}",
            "DIM": lambda: f"{rng.randint(10, 90)} x {rng.randint(10, 90)} x {rng.randint(5, 60)}",
            "HEX": lambda: f"0x{rng.getrandbits(32):08X}",
            "MS": lambda: str(rng.randint(100, 30_000)),
            "PAGE": lambda: str(rng.randint(10, 700)),
            "BUILD": lambda: str(rng.randint(1_000, 99_999)),
        }[label]()

    def _chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def person(self) -> str:
        fake = self.fake
        return (
            fake.first_name()
            if self.rng.random() < 0.2
            else f"{fake.first_name()} {fake.last_name()}"
        )

    def location(self) -> str:
        pick = self.rng.random()
        fake = self.fake
        return fake.city() if pick < 0.5 else fake.state() if pick < 0.8 else fake.country()

    def email_address(self) -> str:
        fake = self.fake
        return self.rng.choice((fake.email, fake.free_email, fake.company_email))()

    def phone_number(self) -> str:
        return self.fake.phone_number()

    def credit_card(self) -> str:
        card_type = self.rng.choice(("visa16", "mastercard", "amex", "discover"))
        digits = self.fake.credit_card_number(card_type=card_type)
        if self.rng.random() < 0.5 and len(digits) == 16:
            return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
        return digits

    def us_ssn(self) -> str:
        return self.fake.ssn()

    def iban_code(self) -> str:
        iban = self.fake.iban()
        if self.rng.random() < 0.5:
            return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban

    def ip_address(self) -> str:
        return self.fake.ipv4_public() if self.rng.random() < 0.8 else self.fake.ipv6()

    def openai_api_key(self) -> str:
        if self.rng.random() < 0.5:
            return (
                "sk-proj-" + self._chars(_BASE62 + "_-", 48) + "T3BlbkFJ" + self._chars(_BASE62, 20)
            )
        return "sk-" + self._chars(_BASE62, 48)

    def anthropic_api_key(self) -> str:
        return "sk-ant-api03-" + self._chars(_BASE62 + "_-", 93) + "AA"

    def aws_access_key_id(self) -> str:
        return "AKIA" + self._chars(_BASE32, 16)

    def aws_secret_access_key(self) -> str:
        return self._chars(_BASE62 + "/+", 40)

    def github_token(self) -> str:
        return "ghp_" + self._chars(_BASE62, 36)

    def slack_token(self) -> str:
        rng = self.rng
        return f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-" + self._chars(
            _BASE62, 24
        )

    def stripe_key(self) -> str:
        return self.rng.choice(("sk_live_", "rk_live_")) + self._chars(_BASE62, 24)

    def jwt(self) -> str:
        def part(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = json.dumps({"alg": self.rng.choice(("HS256", "RS256")), "typ": "JWT"})
        claims = {"sub": str(self.rng.randint(1, 10**9)), "name": self.fake.name()}
        signature = bytes(self.rng.getrandbits(8) for _ in range(32))
        return ".".join((part(header.encode()), part(json.dumps(claims).encode()), part(signature)))

    def private_key(self) -> str:
        kind = self.rng.choice(("RSA ", "EC ", "OPENSSH ", ""))
        body = base64.b64encode(bytes(self.rng.getrandbits(8) for _ in range(240))).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "\n".join(
            [f"-----BEGIN {kind}PRIVATE KEY-----", *lines, f"-----END {kind}PRIVATE KEY-----"]
        )

    def password(self) -> str:
        # Letters, digits and the punctuation a URL or connection string carries unescaped.
        core = self.fake.password(length=self.rng.randint(10, 18), special_chars=False)
        cut = self.rng.randint(1, len(core) - 1)
        return core[:cut] + self.rng.choice("!$*_-.~") + core[cut:]
