#!/usr/bin/env python3
"""Runs the LAN handshake of lan.json with an independent Noise implementation.

Reads lan.json beside this file (the transport PSK, the Noise protocol name and the prologue),
runs Noise_NNpsk0_25519_ChaChaPoly_SHA256 between an initiator and a responder with the PyPI
`noiseprotocol` package and fixed ephemeral keys (32 bytes of 0x11 and of 0x22), then has
each side encrypt a ping frame as its first transport message, and writes the messages to
lan-noise-python.json. The Rust test `the_handshake_matches_an_independent_implementation`
(crates/lan) runs the same handshake with Ferry's own primitives and compares every byte.

    python3 -m venv /tmp/noise-env && /tmp/noise-env/bin/pip install noiseprotocol==0.3.1
    /tmp/noise-env/bin/python protocol/tests/vectors/lan_noise_python.py
"""

import json
import pathlib
import warnings

from noise.connection import Keypair, NoiseConnection

here = pathlib.Path(__file__).parent
vectors = json.loads((here / "lan.json").read_text())
psk = bytes.fromhex(vectors["transport_psk"])
initiator_ephemeral = bytes([0x11] * 32)
responder_ephemeral = bytes([0x22] * 32)
# A ping frame in the frame stream: its length (u32 big-endian), then kind 4.
ping = bytes.fromhex("0000000104")


def side(initiator, ephemeral):
    connection = NoiseConnection.from_name(vectors["noise"].encode())
    connection.set_psks(psk)
    connection.set_prologue(vectors["prologue"].encode())
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    with warnings.catch_warnings():
        # Fixed ephemeral keys are for vectors only, as the package warns.
        warnings.simplefilter("ignore")
        connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
        connection.start_handshake()
    return connection


initiator = side(True, initiator_ephemeral)
responder = side(False, responder_ephemeral)
message_1 = initiator.write_message()
responder.read_message(message_1)
message_2 = responder.write_message()
initiator.read_message(message_2)
assert initiator.handshake_finished and responder.handshake_finished

out = {
    "made_by": "lan_noise_python.py with noiseprotocol 0.3.1",
    "initiator_ephemeral": initiator_ephemeral.hex(),
    "responder_ephemeral": responder_ephemeral.hex(),
    "message_1": message_1.hex(),
    "message_2": message_2.hex(),
    "transport_plaintext": ping.hex(),
    "initiator_transport_0": initiator.encrypt(ping).hex(),
    "responder_transport_0": responder.encrypt(ping).hex(),
}
(here / "lan-noise-python.json").write_text(json.dumps(out, indent=2) + "\n")
