"""
The bearer token a node may require of writes (C{api.token_file}): a
write must carry C{Authorization: Bearer <token>}.  Pure: a header in, a
verdict out.
"""

from __future__ import annotations

import hmac


def bearerFits(authorization: bytes | None, token: bytes) -> bool:
    """
    Whether C{authorization} (the request's header, if any) is
    C{Bearer <token>}; compared in constant time.
    """
    if authorization is None:
        return False
    scheme, _, given = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token)
