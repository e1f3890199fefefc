"""`sluice experiments status|set-weight|resume|rollback`: an experiment's live weights on a
running gateway, through its admin endpoint (/admin/experiments/NAME, an `admin: true` key).

Exit codes: 0 done, 1 the gateway refused or could not be reached, 2 usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_KEY_ENV = "SLUICE_ADMIN_KEY"


def add_admin_commands(subcommands: Any) -> None:
    """Add the live-weight commands to the `sluice experiments` group."""
    status = subcommands.add_parser("status", help="an experiment's live weights and canary")
    _common(status)
    status.set_defaults(run=_run, payload=None)

    weight = subcommands.add_parser(
        "set-weight",
        help="set an arm's weight by hand (a canary arm: percent of traffic, pauses its ramp)",
    )
    _common(weight)
    weight.add_argument("arm", metavar="ARM")
    weight.add_argument("weight", metavar="WEIGHT", type=float)
    weight.set_defaults(run=_run, payload="weight")

    for action, text in (
        ("resume", "back to the policy's weights and canary schedule (clears a rollback)"),
        ("rollback", "roll the canary back: its arm gets no traffic until resumed"),
    ):
        command = subcommands.add_parser(action, help=text)
        _common(command)
        command.set_defaults(run=_run, payload=action)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the experiment, as named in the policy")
    parser.add_argument(
        "--url",
        default=os.environ.get("SLUICE_URL", DEFAULT_URL),
        help=f"the gateway ($SLUICE_URL, default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        help=f"environment variable holding an admin API key (default {DEFAULT_KEY_ENV})",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _run(args: argparse.Namespace) -> int:
    key = os.environ.get(args.key_env)
    if not key:
        print(
            f"sluice experiments: set {args.key_env} to an API key with admin: true "
            "(or name another variable with --key-env)",
            file=sys.stderr,
        )
        return 2
    url = f"{args.url.rstrip('/')}/admin/experiments/{args.name}"
    headers = {"authorization": f"Bearer {key}"}
    body: dict[str, Any] | None = None
    if args.payload == "weight":
        body = {"arm": args.arm, "weight": args.weight}
    elif args.payload is not None:
        body = {"action": args.payload}
    try:
        if body is None:
            response = httpx.get(url, headers=headers, timeout=10)
        else:
            response = httpx.post(url, headers=headers, content=orjson.dumps(body), timeout=10)
    except httpx.HTTPError as exc:
        print(f"sluice experiments: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict):
        message = response.text
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = data["error"].get("message", message)
        print(f"sluice experiments: HTTP {response.status_code}: {message}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(data))
    return 0


def render(status: dict[str, Any]) -> str:
    """The admin endpoint's status as a few lines of text."""
    lines = [f"experiment {status['experiment']} (model {status['model']}):"]
    by_hand = status.get("set_by_hand") or {}
    for arm, spec in status["arms"].items():
        note = " (set by hand)" if arm in by_hand else ""
        lines.append(f"  {arm:<20} weight {spec['weight']:g}  share {spec['share']:.1%}{note}")
    canary = status.get("canary")
    if canary:
        state = (
            f"ROLLED BACK: {canary['rolled_back']}"
            if canary["rolled_back"]
            else (
                "set by hand"
                if canary["weight_set_by_hand"] is not None
                else f"on schedule ({canary['scheduled_weight']:g}% at {canary['elapsed_s']:.0f} s)"
            )
        )
        window = canary["window"]
        p99 = "-" if window["p99_ms"] is None else f"{window['p99_ms']:.0f} ms"
        lines.append(f"  canary {canary['arm']}: {canary['weight']:g}% of traffic, {state}")
        lines.append(
            f"  window: {window['requests']} requests, error rate {window['error_rate']:.1%}, "
            f"p99 {p99}"
        )
    return "\n".join(lines)
