#!/usr/bin/env python3
"""Answers the Rust join side's SPAKE2 message with an independent implementation.

Reads pairing.json beside this file (the join side's key exchange message, from the Rust
implementation), runs the other side of symmetric SPAKE2 with the PyPI `spake2` package (pure
Python, same Ed25519 group and constants) on the same code and identity, and writes what it sent
and the key it derived to pairing-python.json. The Rust test
`spake2_agrees_with_the_python_implementation` then finishes its side with that message.

    python3 -m venv /tmp/spake2-env && /tmp/spake2-env/bin/pip install spake2==0.9
    /tmp/spake2-env/bin/python protocol/tests/vectors/pairing_python.py
"""

import hashlib
import json
import pathlib

from spake2 import SPAKE2_Symmetric

here = pathlib.Path(__file__).parent
vectors = json.loads((here / "pairing.json").read_text())
password = vectors["code"].encode()
identity = vectors["spake2_identity"].encode()
# The first byte of a frame's body follows its 11-byte header.
rust_message = bytes.fromhex(vectors["frames"]["join_pake"])[11:]

counter = 0


def entropy(n):
    """A reproducible stream, so that the file is the same on every run."""
    global counter
    out = b""
    while len(out) < n:
        out += hashlib.sha256(b"python" + counter.to_bytes(8, "big")).digest()
        counter += 1
    return out[:n]


python = SPAKE2_Symmetric(password, idSymmetric=identity, entropy_f=entropy)
python_message = python.start()
key = python.finish(rust_message)
(here / "pairing-python.json").write_text(
    json.dumps(
        {
            "password": password.decode(),
            "identity": identity.decode(),
            "rust_message": rust_message.hex(),
            "python_message": python_message.hex(),
            "python_key": key.hex(),
        },
        indent=2,
    )
    + "\n"
)
