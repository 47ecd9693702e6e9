#!/usr/bin/env python3
"""Seals and opens the key wraps of generation.json with an independent HPKE implementation.

Reads generation.json beside this file (made by the Rust implementation). For every wrap it
derives the sender's ephemeral key pair from the recorded input (RFC 9180 DeriveKeyPair), seals
the recorded handover to the recipient's public key with the recorded info, in base mode with
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, using PyPI `pyhpke` (built on
`cryptography`); it also opens the committed wrap with the recipient's secret. It writes what
it made and what it opened to generation-python.json, which the Rust test
`wraps_agree_with_the_python_implementation` compares byte for byte.

    python3 -m venv /tmp/hpke-env && /tmp/hpke-env/bin/pip install pyhpke==0.6.2
    /tmp/hpke-env/bin/python protocol/tests/vectors/generation_python.py
"""

import json
import pathlib

from pyhpke import AEADId, CipherSuite, KDFId, KEMId

here = pathlib.Path(__file__).parent
vectors = json.loads((here / "generation.json").read_text())
suite = CipherSuite.new(
    KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305
)

out = {}
for case in ("rotation", "move"):
    made = []
    for wrap in vectors[case]["wraps"]:
        recipient = suite.kem.deserialize_public_key(bytes.fromhex(wrap["recipient_public"]))
        ephemeral = suite.kem.derive_key_pair(bytes.fromhex(wrap["ephemeral_ikm"]))
        info = bytes.fromhex(wrap["info"])
        enc, sender = suite.create_sender_context(recipient, info, eks=ephemeral)
        sealed = sender.seal(bytes.fromhex(wrap["handover"]), b"")
        secret = suite.kem.deserialize_private_key(bytes.fromhex(wrap["recipient_secret"]))
        receiver = suite.create_recipient_context(bytes.fromhex(wrap["enc"]), secret, info)
        opened = receiver.open(bytes.fromhex(wrap["sealed"]), b"")
        made.append(
            {
                "device": wrap["device"],
                "enc": enc.hex(),
                "sealed": sealed.hex(),
                "opened": opened.hex(),
            }
        )
    out[case] = made

(here / "generation-python.json").write_text(json.dumps(out, indent=2) + "\n")
