"""The `--enc-key-env` option the `sluice audit` commands share, and the keyring it names.

By default the key comes from the env var the policy uses by default, when that is set.
"""

from __future__ import annotations

import argparse
import os

from gateway.audit.encryption import DEFAULT_ENC_KEY_ENV, Keyring


def add_enc_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--enc-key-env",
        metavar="NAME",
        action="append",
        help=f"env var holding a key of an encrypted log; repeat it for keys retired by a "
        f"rotation, the current key first (default: {DEFAULT_ENC_KEY_ENV}, if set)",
    )


def keyring_from_args(args: argparse.Namespace) -> Keyring | None:
    """The keys named by `--enc-key-env`, or the default variable's; None when there are none.

    ValueError says which variable is unset or does not hold a 256-bit key.
    """
    names: list[str] | None = args.enc_key_env
    if names:
        return Keyring.from_env(names, os.environ)
    if os.environ.get(DEFAULT_ENC_KEY_ENV):
        return Keyring.from_env([DEFAULT_ENC_KEY_ENV], os.environ)
    return None
