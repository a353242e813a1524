"""
The cluster catalog: service records, the rules that merge them, and their
JSON.  Pure: it imports nothing else of ours and does no I/O; time comes
from an injected L{twisted.internet.interfaces.IReactorTime}.
"""

from .codec import DecodeError, decodeService, decodeStateServices, encodeService
from .interfaces import IBroadcaster, ICatalogObserver
from .order import recordOrder
from .service import Port, Service, Status
from .snapshot import CatalogSnapshot
from .state import (
    ChangeEvent,
    Lifespans,
    Limits,
    Refused,
    ServicesState,
    TombstoneResend,
)

__all__ = [
    "CatalogSnapshot",
    "ChangeEvent",
    "DecodeError",
    "IBroadcaster",
    "ICatalogObserver",
    "Lifespans",
    "Limits",
    "Port",
    "Refused",
    "Service",
    "ServicesState",
    "Status",
    "TombstoneResend",
    "decodeService",
    "decodeStateServices",
    "encodeService",
    "recordOrder",
]
