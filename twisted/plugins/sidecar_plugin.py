"""
The twistd plugins: C{twistd -n sidecar --config=FILE}.
"""

from twisted.application.service import ServiceMaker

sidecar = ServiceMaker(
    "sidecar",
    "sidecar.tap",
    "Peer-to-peer service discovery: gossip, health checks, HAProxy, status API.",
    "sidecar",
)
