"""Prints the SECRET_KEY `make run` uses, made on first use and kept in a git-ignored file.

Usage: secret_key.py [FILE]   (default .secret_key at the repository root)

The key signs voter cookies and salts address hashes: one published in the repository would let
anyone forge a voter. Made once per checkout, readable by its owner only (0600), so cookies stay
valid from one `make run` to the next.
"""

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def secret_key(path: Path) -> str:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        raise SystemExit(f"{path} is empty: delete it and a new key is made") from None
    with os.fdopen(descriptor, "w") as file:
        key = secrets.token_urlsafe(50)
        file.write(key + "\n")
    return key


if __name__ == "__main__":
    print(secret_key(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".secret_key"))
