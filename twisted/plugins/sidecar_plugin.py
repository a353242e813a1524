"""
The twistd plugins: C{twistd -n sidecar --config=FILE}, and
C{twistd -n sidecar-haproxy --sidecar=URL}.
"""

from twisted.application.service import ServiceMaker

sidecar = ServiceMaker(
    "sidecar",
    "sidecar.tap",
    "Peer-to-peer service discovery: gossip, health checks, HAProxy, status API.",
    "sidecar",
)

sidecarHAProxy = ServiceMaker(
    "sidecar-haproxy",
    "sidecar.haproxytap",
    "Drive a local HAProxy from a Sidecar's /api/watch stream.",
    "sidecar-haproxy",
)
