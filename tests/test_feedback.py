"""`POST /v1/feedback` on a real gateway: the score lands in the audit log's hash chain beside the
request it scores, bad bodies get a 400 naming the field, and erasure reaches feedback too."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson

from gateway.audit.chain import GENESIS, digest, personal_ok
from gateway.audit.segment import SEGMENT_NAME
from gateway.cli import main
from tests.conftest import ALICE_KEY, BOB_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def audited(upstream: MockUpstream, directory: Path, content: str = "redacted") -> str:
    return (
        policy_yaml(upstream.base_url)
        + f"audit:\n  dir: '{directory}'\n  fsync: none\n  content: {content}\n"
    )


def read_log(directory: Path) -> list[dict[str, Any]]:
    """Every record of the log, in order, seals left out."""
    records = []
    for path in sorted(p for p in directory.iterdir() if SEGMENT_NAME.match(p.name)):
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line)
            if entry.get("type") != "seal":
                records.append(entry)
    return records


def ask(server: ServerThread, user: str = "u-1") -> str:
    """One chat completion through the openai SDK; the `x-request-id` it came back with."""
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=ALICE_KEY, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-echo", messages=[{"role": "user", "content": "hello"}], user=user
    )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-request-id"]


def feedback(server: ServerThread, body: Any, headers: dict[str, str] = AUTH) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{server.url}/v1/feedback", content=content, headers=headers, timeout=10)


def test_feedback_joins_the_request_in_the_hash_chain(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path, capsys
) -> None:
    server = start_gateway(audited(upstream, tmp_path))
    request_id = ask(server)
    body = {"request_id": request_id, "score": 1, "label": "helpful", "comment": "spot on"}
    answer = feedback(server, body)
    assert answer.status_code == 202
    assert answer.json() == {
        "status": "recorded",
        "request_id": request_id,
        "id": answer.headers["x-request-id"],
    }
    server.stop()  # graceful: the queue is written and the segment sealed

    request, scored = read_log(tmp_path)
    assert request["request_id"] == request_id and "kind" not in request
    assert scored["kind"] == "feedback"
    assert scored["request_id"] == request_id
    assert scored["feedback_id"] == answer.headers["x-request-id"]
    assert (scored["tenant"], scored["key_id"]) == ("acme", "alice")
    assert (scored["score"], scored["label"]) == (1.0, "helpful")
    assert scored["personal"]["content"] == {"comment": "spot on"}
    assert scored["personal"]["client_ip"] == "127.0.0.0"  # truncated, as the policy says
    assert (request["seq"], scored["seq"]) == (1, 2)
    assert request["prev"] == GENESIS and scored["prev"] == digest(request)
    assert personal_ok(scored)
    assert main(["audit", "verify", "--dir", str(tmp_path)]) == 0
    assert "OK: 2 records" in capsys.readouterr().out


def test_unknown_request_ids_are_accepted_and_comments_follow_the_content_policy(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The gateway cannot tell an unknown id from one another replica served or one still in
    the audit queue, so it records the score; the report leaves out what matches no request."""
    server = start_gateway(audited(upstream, tmp_path, content="hashed"))
    answer = feedback(server, {"request_id": "never-seen", "score": -0.5, "comment": "meh"})
    assert answer.status_code == 202
    server.stop()
    (record,) = read_log(tmp_path)
    assert record["request_id"] == "never-seen" and record["label"] is None
    digest_of_comment = hashlib.sha256(b"meh").hexdigest()
    assert record["personal"]["content"] == {"comment_sha256": digest_of_comment}


BAD_BODIES: list[tuple[Any, str]] = [
    ({"score": 1}, "request_id"),
    ({"request_id": "r-1"}, "score"),
    ({"request_id": "r-1", "score": 1.5}, "score"),
    ({"request_id": "r-1", "score": -2}, "score"),
    ({"request_id": "r-1", "score": "1"}, "score"),
    ({"request_id": "r-1", "score": True}, "score"),
    (b'{"request_id": "r-1", "score": NaN}', "score"),
    ({"request_id": "", "score": 0}, "request_id"),
    ({"request_id": "has spaces", "score": 0}, "request_id"),
    ({"request_id": 7, "score": 0}, "request_id"),
    ({"request_id": "r-1", "score": 0, "label": "free text here"}, "label"),
    ({"request_id": "r-1", "score": 0, "comment": "x" * 4097}, "comment"),
    ({"request_id": "r-1", "score": 0, "rating": 5}, "rating"),
]


def test_bad_bodies_get_a_400_naming_the_field(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(audited(upstream, tmp_path))
    for body, param in BAD_BODIES:
        answer = feedback(server, body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error", body
        assert error["param"] == param, (body, error)
    server.stop()
    assert read_log(tmp_path) == []  # nothing recorded for any of them


def test_feedback_errors(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    audited_server = start_gateway(audited(upstream, tmp_path))
    good = {"request_id": "r-1", "score": 0}
    assert feedback(audited_server, good, headers={}).status_code == 401
    wrong_key = {"authorization": "Bearer sk-nope"}
    assert feedback(audited_server, good, headers=wrong_key).status_code == 401
    assert httpx.get(f"{audited_server.url}/v1/feedback", headers=AUTH).status_code == 405
    not_json = feedback(audited_server, b"{score")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    listed = feedback(audited_server, [good])
    assert listed.status_code == 400
    too_big = feedback(audited_server, {**good, "comment": "x" * 20_000})
    assert too_big.status_code == 413

    plain = start_gateway(policy_yaml(upstream.base_url))
    unrecorded = feedback(plain, good)
    assert unrecorded.status_code == 404
    error = unrecorded.json()["error"]
    assert error["code"] == "feedback_unavailable" and "no 'audit' section" in error["message"]


def test_purging_a_user_erases_their_feedback_too(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path, capsys
) -> None:
    server = start_gateway(audited(upstream, tmp_path))
    carol = ask(server, user="carol")
    dave = ask(server, user="dave")
    assert feedback(server, {"request_id": carol, "score": 1, "comment": "I am Carol"}).is_success
    assert feedback(server, {"request_id": dave, "score": 0, "comment": "dave here"}).is_success
    # Bob (tenant beta) scores an id he happens to share with carol's request: not carol's.
    bob = {"authorization": f"Bearer {BOB_KEY}"}
    assert feedback(server, {"request_id": carol, "score": 0, "comment": "bob"}, bob).is_success
    server.stop()

    assert main(["audit", "purge", "--user", "carol", "--dir", str(tmp_path)]) == 0
    assert "2 records of user carol purged" in capsys.readouterr().out
    records = read_log(tmp_path)
    purged = [(r.get("kind"), r["request_id"]) for r in records if r["personal"].get("purged")]
    assert purged == [(None, carol), ("feedback", carol)]
    comments = [r["personal"].get("content") for r in records if r.get("kind") == "feedback"]
    assert comments == [None, {"comment": "dave here"}, {"comment": "bob"}]
    assert main(["audit", "verify", "--dir", str(tmp_path)]) == 0
