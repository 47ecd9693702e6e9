#!/usr/bin/env python3
"""Makes the key wraps of generation.json again with an independent HPKE implementation.

Reads generation.json beside this file (made by the Rust implementation). For every wrap it
builds the HPKE `info` and the handover from the SPEC's formulas and the case's fields (and
checks them against the committed ones), derives the sender's ephemeral key pair from the
recorded input (RFC 9180 DeriveKeyPair), and seals the handover to the recipient's public key
in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, using PyPI
`pyhpke` (built on `cryptography`); it also opens the committed wrap with the recipient's
secret. It writes what it made and what it opened to generation-python.json, which the Rust
test `wraps_agree_with_the_python_implementation` compares byte for byte.

    python3 -m venv /tmp/hpke-env
    /tmp/hpke-env/bin/pip install pyhpke==0.6.2 cryptography==44.0.3
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


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(text):
    data = text.encode()
    return varint(len(data)) + data


def handover(case):
    """SPEC §11.2: key [32] ‖ Option<Storage>, Storage = url ‖ credentials (§9.6's enum)."""
    out = bytes.fromhex(case["new_key"])
    storage = case["storage"]
    if storage is None:
        return out + b"\x00"
    out += b"\x01" + string(storage["url"])
    credentials = storage["credentials"]
    if credentials == "none":
        return out + b"\x00"
    if "s3" in credentials:
        s3 = credentials["s3"]
        return out + b"\x01" + string(s3["access_key_id"]) + string(s3["secret_access_key"])
    return out + b"\x02" + string(credentials["webdav"]["password"])


def info(case, device):
    """SPEC §11.2: "ferry/v2/wrap" ‖ 0 ‖ old key id ‖ generation (BE) ‖ new key id ‖ device ‖ creator."""
    successor = case["successor"]
    return (
        b"ferry/v2/wrap\x00"
        + bytes.fromhex(case["old_key_id"])
        + successor["generation"].to_bytes(4, "big")
        + bytes.fromhex(successor["key_id"])
        + bytes.fromhex(device)
        + bytes.fromhex(case["fields"]["creator"])
    )


out = {}
for name in ("rotation", "move"):
    case = vectors[name]
    made = []
    for wrap in case["wraps"]:
        wrap_info = info(case, wrap["device"])
        plaintext = handover(case)
        assert wrap_info.hex() == wrap["info"], f"{name}: info differs from the SPEC's"
        assert plaintext.hex() == wrap["handover"], f"{name}: handover differs from the SPEC's"
        recipient = suite.kem.deserialize_public_key(bytes.fromhex(wrap["recipient_public"]))
        ephemeral = suite.kem.derive_key_pair(bytes.fromhex(wrap["ephemeral_ikm"]))
        enc, sender = suite.create_sender_context(recipient, wrap_info, eks=ephemeral)
        sealed = sender.seal(plaintext, b"")
        secret = suite.kem.deserialize_private_key(bytes.fromhex(wrap["recipient_secret"]))
        receiver = suite.create_recipient_context(bytes.fromhex(wrap["enc"]), secret, wrap_info)
        opened = receiver.open(bytes.fromhex(wrap["sealed"]), b"")
        made.append(
            {
                "device": wrap["device"],
                "enc": enc.hex(),
                "sealed": sealed.hex(),
                "opened": opened.hex(),
            }
        )
    out[name] = made

(here / "generation-python.json").write_text(json.dumps(out, indent=2) + "\n")
