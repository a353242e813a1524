"""
The HTTP validators and content coding of the cached documents, as pure
functions of header values.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import datetimeToString

from sidecar.web.conditional import (
    acceptsGzip,
    etagMatches,
    lastModified,
    notModified,
    unmodifiedSince,
)

S = 1_000_000_000
ETAG = b'"abc"'


class LastModifiedTests(SynchronousTestCase):
    def test_theSecondAfterTheChangeOnceItIsPast(self) -> None:
        changed = 100 * S + 300_000_000
        self.assertIsNone(lastModified(changed, changed))
        self.assertIsNone(lastModified(changed, 101 * S))
        self.assertEqual(lastModified(changed, 101 * S + 1), datetimeToString(101))

    def test_aWholeSecondIsItsOwn(self) -> None:
        self.assertEqual(lastModified(100 * S, 100 * S + 1), datetimeToString(100))

    def test_noLaterChangeLooksUnmodified(self) -> None:
        # Given at 101.5 for a change at 100.3, sent back later: a change
        # after it was given is newer than the date.
        given = lastModified(100 * S + 300_000_000, 101 * S + 500_000_000)
        self.assertFalse(unmodifiedSince(given, 101 * S + 500_000_001))
        self.assertTrue(unmodifiedSince(given, 100 * S + 300_000_000))


class ValidatorTests(SynchronousTestCase):
    def test_etagLists(self) -> None:
        self.assertTrue(etagMatches(ETAG, ETAG))
        self.assertTrue(etagMatches(b'"x", W/"abc"', ETAG))
        self.assertTrue(etagMatches(b"*", ETAG))
        self.assertFalse(etagMatches(b'"abcd"', ETAG))
        self.assertFalse(etagMatches(b"", ETAG))
        self.assertFalse(etagMatches(None, ETAG))

    def test_badDatesSayNothing(self) -> None:
        for header in (b"", b"soon", b"Sun, 99 Xyz 2026 99:00:00 GMT", b"\xff"):
            self.assertFalse(unmodifiedSince(header, 0), header)

    def test_ifNoneMatchDecidesWhenSent(self) -> None:
        date = datetimeToString(200)
        self.assertTrue(notModified(None, date, ETAG, 100 * S))
        self.assertFalse(notModified(b'"other"', date, ETAG, 100 * S))
        self.assertTrue(notModified(ETAG, None, ETAG, 100 * S))
        self.assertFalse(notModified(None, None, ETAG, 100 * S))


class GzipTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        for header in (b"gzip", b"deflate, gzip", b"GZIP;q=0.5", b"x-gzip", b"*"):
            self.assertTrue(acceptsGzip(header), header)

    def test_refused(self) -> None:
        for header in (
            None,
            b"",
            b"identity",
            b"gzip;q=0",
            b"gzip; q=0.0",
            b"*;q=0",
            b"gzip;q=nonsense",
            b"*, gzip;q=0",
        ):
            self.assertFalse(acceptsGzip(header), header)
