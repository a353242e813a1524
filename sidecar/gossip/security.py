"""
memberlist's encryption: AES-GCM with a keyring (the primary key seals,
every key is tried to open), as serf's C{-encrypt} uses it; a new key for
C{sidecar keygen}; and the warning a node gives when it gossips beyond
its host without one.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .messages import WireError

VERSION_PADDED = 0
VERSION_PLAIN = 1
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZES = (16, 24, 32)


class Keyring:
    """
    The gossip keys: C{keys[0]} is the primary, used to seal; all are tried
    to open, so keys can be rotated without a partition.
    """

    def __init__(
        self, keys: Sequence[bytes], randomBytes: Callable[[int], bytes] = os.urandom
    ) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        for key in keys:
            if len(key) not in KEY_SIZES:
                raise ValueError(f"an AES key is 16, 24 or 32 bytes, not {len(key)}")
        self.keys = list(keys)
        self._randomBytes = randomBytes

    def seal(self, plaintext: bytes, associatedData: bytes = b"") -> bytes:
        """
        Version byte 1, a random nonce, then the ciphertext and its tag.
        """
        nonce = self._randomBytes(NONCE_SIZE)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plaintext, associatedData or None)
        return bytes([VERSION_PLAIN]) + nonce + sealed

    def open(self, data: bytes, associatedData: bytes = b"") -> bytes:
        """
        Open what any key of the ring sealed (version 0, PKCS7-padded, is
        still accepted).

        @raise WireError: when the data is too short, of an unknown
            version, or sealed by no key of this ring.
        """
        if len(data) < 1 + NONCE_SIZE + TAG_SIZE:
            raise WireError(f"encrypted payload too short ({len(data)} bytes)")
        version = data[0]
        if version not in (VERSION_PADDED, VERSION_PLAIN):
            raise WireError(f"unknown encryption version {version}")
        nonce, sealed = data[1 : 1 + NONCE_SIZE], data[1 + NONCE_SIZE :]
        for key in self.keys:
            try:
                plaintext = AESGCM(key).decrypt(nonce, sealed, associatedData or None)
            except InvalidTag:
                continue
            return _unpad(plaintext) if version == VERSION_PADDED else plaintext
        raise WireError("no key in the keyring opens this payload")


def _unpad(plaintext: bytes) -> bytes:
    if not plaintext or not 1 <= plaintext[-1] <= 16:
        raise WireError("bad PKCS7 padding")
    return plaintext[: -plaintext[-1]]


def newKey(size: int = 32, randomBytes: Callable[[int], bytes] = os.urandom) -> str:
    """
    A new random gossip key, base64 as C{node.encrypt_key} takes it.
    """
    if size not in KEY_SIZES:
        raise ValueError(f"an AES key is 16, 24 or 32 bytes, not {size}")
    return base64.b64encode(randomBytes(size)).decode("ascii")


def exposureWarning(bind: str, encrypted: bool) -> str | None:
    """
    What to tell the operator when gossip bound to C{bind} can be reached
    from other hosts without a key: then anyone who reaches the port can
    join, forge members and records, or read the catalog.  L{None} when it
    is sealed, or bound to loopback only.
    """
    if encrypted:
        return None
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if loopback:
        return None
    where = bind or "every interface"
    return (
        f"gossip on {where} is not encrypted: anyone who reaches its port "
        "can join the cluster and change what it routes; set "
        "node.encrypt_key (see 'sidecar keygen')"
    )
