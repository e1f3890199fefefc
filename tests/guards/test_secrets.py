"""Our credential rules: each secret type is found (just the secret, not its label), and the
look-alikes next to it are not: wrong alphabet, too short, no digits, no context."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.guards.pii.secrets import SECRET_TYPES, scan_secrets
from gateway.guards.window import SlidingWindow, Span, rewrite_all


def b64url(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


JWT = ".".join(
    [
        b64url({"alg": "HS256", "typ": "JWT"}),
        b64url({"sub": "1234567890", "name": "A Person", "iat": 1516239022}),
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ]
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi6Z2TkV5G1qgPmL6bQ3kR0mZ2n\n"
    "qJxvQ0pZ3p8m0fH0b8a9Q==\n"
    "-----END RSA PRIVATE KEY-----"
)
OPENAI_PROJECT = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_-" * 4

POSITIVES = [
    ("OPENAI_API_KEY", "use {} please", "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm2n"),
    ("OPENAI_API_KEY", "OPENAI_API_KEY={}\n", OPENAI_PROJECT),
    ("ANTHROPIC_API_KEY", "key: {}", "sk-ant-api03-" + "xY7_zQ2-wE9rT4yU1iO0pA5sD8fG3hJ6kL" * 2),
    ("AWS_ACCESS_KEY_ID", "aws_access_key_id = {}", "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_ACCESS_KEY_ID", "temporary {} creds", "ASIAY34FZKBOKMUTVV7A"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "aws_secret_access_key = {}",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("GITHUB_TOKEN", "token {} ok", "ghp_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8"),
    ("GITHUB_TOKEN", "GH_TOKEN={}", "ghs_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"),
    (
        "GITHUB_TOKEN",
        "pat {}",
        "github_pat_" + "11ABCDEFG0123456789abc" + "_" + "x" * 20 + "Y1" * 19 + "z",
    ),
    ("SLACK_TOKEN", "SLACK={}", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("SLACK_TOKEN", "user token {}", "xoxp-2222222222-3333333333-4444444444-abcdef0123"),
    ("STRIPE_KEY", "stripe {}", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("STRIPE_KEY", "restricted {}", "rk_live_" + "51H7abcDEF123ghiJKL456"),
    ("STRIPE_KEY", "publishable {}", "pk_live_" + "TYooMQauvdEDq54NiTphI7jx"),
    # The prefix is the evidence: 24+ key characters count without a digit.
    ("STRIPE_KEY", "committed {} by mistake", "sk_live_" + "nFmNmmrBqIIWpqKENNZiQWRF"),
    ("STRIPE_KEY", "restricted {}", "rk_live_" + "QWRFnFmNmmrBqIIWpqKENNZi"),
    ("STRIPE_KEY", "test mode {}", "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("STRIPE_KEY", "STRIPE_SECRET={}\n", "rk_test_" + "51H7abcDEF123ghiJKL456xyz"),
    ("JWT", "Authorization: Bearer {}", JWT),
    ("PRIVATE_KEY", "my key:\n{}\nthanks", PEM),
    ("PRIVATE_KEY", "{}", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"),
    ("PASSWORD", "DATABASE_URL=postgres://admin:{}@db.internal:5432/app", "hunter2-X!"),
    ("PASSWORD", "redis://:{}@127.0.0.1:6379/0", "s3cr3tpass"),
    ("PASSWORD", "Server=db;Database=app;User Id=sa;Password={};Encrypt=true", "P@ssw0rd!"),
    ("PASSWORD", "DB_PASSWORD={}\n", "correct-horse-battery"),
    ("PASSWORD", 'conn = "host=x pwd={} port=5432"', "Tr0ub4dor"),
    ("PASSWORD", "password='{}'", "two words"),
    ("PASSWORD", '{{"user": "sa", "password": "{}"}}', "s3cr3t!"),
    ("PASSWORD", '{{"dbPassword":"{}", "x": 1}}', 'with \\"quote\\" inside'),
]


@pytest.mark.parametrize(("label", "template", "secret"), POSITIVES)
def test_each_secret_type_is_found_as_just_the_secret(label: str, template: str, secret: str):
    text = template.format(secret)
    spans = [s for s in scan_secrets(text) if s.label == label]
    assert [text[s.start : s.end] for s in spans] == [secret]


def test_every_secret_type_has_a_positive_example() -> None:
    assert {label for label, _, _ in POSITIVES} == SECRET_TYPES


NEAR_MISSES = [
    "we use sk-learn and sk-this-is-not-a-real-key-at-all for it",  # no digits, a library
    "sk-12345",  # too short
    "task-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",  # "sk-" inside a word
    "AKIA1234567890123456",  # digits 0, 1, 8, 9 are not base32
    "AKIAIOSFODNN7EXAMPL",  # 15 characters after the prefix
    "XAKIAIOSFODNN7EXAMPLE",  # inside a longer word
    "the hash is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # 40 chars, no key context
    "ghp_tooShort123",
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + "9",  # 37 characters
    "xoxb-not-a-token",
    "xoxz-123456789012-1234567890123-AbCdEf",  # no such Slack prefix
    "pk_test_TYooMQauvdEDq54NiTphI7jx",  # a test publishable key: printed in every tutorial
    "pk_live_short",
    "sk_live_abcdefghijklmnopqrstuvw",  # 23 letters: too short to count without a digit
    "ask_live_4eC39HqLyjWDarjtT1zdp7dc",  # inside a word
    "sk_prod_4eC39HqLyjWDarjtT1zdp7dc",  # no such mode
    b64url({"hello": "world"}) + "." + b64url({"sub": "1"}) + ".sig",  # no "alg": not a JWT
    "eyJub3QganNvbg.eyJzdWIiOiIxIn0.sig",  # header is not JSON
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n",
    "https://example.com:8080/path?q=1",  # a port, no credentials
    "mailto:someone@example.com",
    "the password reset link; passwords are hashed",
    "password=${DB_PASSWORD} and pwd=****",  # an env reference and a mask
    '{"password_hash": "abc123", "password_policy": "strict"}',  # not a password
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_look_alikes_are_not_secrets(text: str) -> None:
    assert scan_secrets(text) == []


def test_aws_secret_key_counts_after_its_key_id() -> None:
    text = (
        'creds: {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", '
        '"Secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}'
    )
    labels = sorted(s.label for s in scan_secrets(text))
    assert labels == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def redact(text: str, span: Span) -> str:
    return f"<{span.label}>"


LONG = f"header\nBearer {JWT} and {OPENAI_PROJECT} then\n{PEM}\nbye " + "x" * 10


def test_long_secrets_never_leave_a_stream_in_part() -> None:
    # Longer than the window: each still matches while cut short, so it is held, not sent.
    window = 64
    assert len(JWT) > window and len(OPENAI_PROJECT) > window and len(PEM) > window
    filt = SlidingWindow(scan_secrets, redact, window)
    sent = ""
    for char in LONG:
        sent += filt.feed(char)
        for secret in (JWT, OPENAI_PROJECT, PEM):
            assert secret[:12] not in sent
    sent += filt.flush()
    assert sent == rewrite_all(LONG, scan_secrets, redact)
    assert sent == "header\nBearer <JWT> and <OPENAI_API_KEY> then\n<PRIVATE_KEY>\nbye " + "x" * 10


def test_stream_of_secrets_matches_the_whole_text_at_every_cut() -> None:
    text = (
        "pw postgres://u:hunter2@db/x, key AKIAIOSFODNN7EXAMPLE, sk_live_4eC39HqLyjWDarjtT1zdp7dc."
    )
    want = rewrite_all(text, scan_secrets, redact)
    assert want == "pw postgres://u:<PASSWORD>@db/x, key <AWS_ACCESS_KEY_ID>, <STRIPE_KEY>."
    for cut in range(len(text) + 1):
        filt = SlidingWindow(scan_secrets, redact, 128)
        assert filt.feed(text[:cut]) + filt.feed(text[cut:]) + filt.flush() == want, cut


SECRETISH = st.sampled_from(
    [
        "sk-",
        "sk-ant-",
        "AKIA",
        "ghp_",
        "xoxb-",
        "sk_live_",
        "eyJ",
        ".",
        "-----BEGIN ",
        "PRIVATE KEY",
        "-----",
        "://",
        ":",
        "@",
        "password=",
        '"pwd": "',
        "\\",
        '"',
        "\n",
        " ",
        "7",
        "Q",
        "a/+",
    ]
) | st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(SECRETISH, max_size=30))
def test_any_text_scans_without_error_into_spans_inside_it(parts: list[str]) -> None:
    text = "".join(parts)
    for span in scan_secrets(text):
        assert 0 <= span.start < span.end <= len(text)
        assert span.label in SECRET_TYPES
