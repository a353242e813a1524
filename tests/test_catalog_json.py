"""
The Go Sidecar's JSON, to the byte: timestamps, key order, escaping, and
errors that name the field at fault.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import (
    DecodeError,
    Port,
    Service,
    Status,
    decodeService,
    decodeStateServices,
    encodeService,
)
from sidecar.catalog.timestamps import TimestampError, formatTimestamp, parseTimestamp


class TimestampTests(SynchronousTestCase):
    def test_goRFC3339NanoForms(self) -> None:
        for text, nanoseconds in (
            ("2015-03-04T01:12:46.669648453Z", 1425431566669648453),
            ("2024-01-01T00:00:00.1Z", 1704067200100000000),
            ("1970-01-01T00:00:00Z", 0),
            ("0001-01-01T00:00:00Z", -62135596800000000000),
        ):
            self.assertEqual(parseTimestamp(text), nanoseconds)
            self.assertEqual(formatTimestamp(nanoseconds), text)

    def test_offsetsAreNormalisedToUTC(self) -> None:
        nanoseconds = parseTimestamp("2015-03-04T01:12:46.6-08:00")
        self.assertEqual(formatTimestamp(nanoseconds), "2015-03-04T09:12:46.6Z")

    def test_junkIsRefused(self) -> None:
        for junk in ("", "yesterday", "2015-03-04", "2015-13-04T00:00:00Z", 5):
            self.assertRaises(TimestampError, parseTimestamp, junk)


GOLDEN = (
    b'{"ID":"deadbeef0123","Name":"a<b>&c","Image":"caf\xc3\xa9:1",'
    b'"Created":"2015-03-04T01:12:46.669648453Z","Hostname":"host-a",'
    b'"Ports":[{"Type":"tcp","Port":32768,"ServicePort":10001,"IP":"127.0.1.1"}],'
    b'"Updated":"2015-03-04T01:12:47Z","ProxyMode":"http","Status":2}'
)
SERVICE = Service(
    id="deadbeef0123",
    name="a<b>&c",
    image="café:1",
    created=1425431566669648453,
    hostname="host-a",
    ports=(Port("tcp", 32768, 10001, "127.0.1.1"),),
    updated=1425431567000000000,
    proxyMode="http",
    status=Status.UNHEALTHY,
)


class ServiceJSONTests(SynchronousTestCase):
    def test_encodesExactlyAsGo(self) -> None:
        self.assertEqual(
            encodeService(SERVICE),
            GOLDEN.replace(b"a<b>&c", b"a\\u003cb\\u003e\\u0026c"),
        )

    def test_decodesGoOutputWithAnOffset(self) -> None:
        document = GOLDEN.replace(b"2015-03-04T01:12:47Z", b"2015-03-03T18:12:47-07:00")
        self.assertEqual(decodeService(document), SERVICE)

    def test_missingFieldsTakeGoZeroValues(self) -> None:
        service = decodeService(b'{"ID":"x","Ports":null}')
        self.assertEqual(service.ports, ())
        self.assertEqual(service.status, Status.ALIVE)
        self.assertEqual(formatTimestamp(service.updated), "0001-01-01T00:00:00Z")

    def test_errorsNameTheField(self) -> None:
        for document, where in (
            (b"not json", "not JSON"),
            (b"[]", "Service: expected an object"),
            (b'{"Name":"x"}', "Service.ID: must not be empty"),
            (b'{"ID":"x","Status":9}', "Service.Status: unknown status 9"),
            (b'{"ID":"x","Status":true}', "Service.Status: expected an integer"),
            (b'{"ID":"x","Ports":{}}', "Service.Ports: expected a list"),
            (b'{"ID":"x","Ports":[{"Port":"80"}]}', "Service.Ports[0].Port"),
            (b'{"ID":7}', "Service.ID: expected a string"),
            (b'{"ID":"x","Updated":"soon"}', "Service.Updated: not an RFC 3339"),
        ):
            error = self.assertRaises(DecodeError, decodeService, document)
            self.assertIn(where, str(error))

    def test_stateDocumentYieldsEveryRecord(self) -> None:
        state = (
            b'{"Servers":{"host-a":{"Name":"host-a","Services":{"deadbeef0123":'
            + GOLDEN
            + b'},"LastUpdated":"2015-03-04T01:12:47Z",'
            b'"LastChanged":"2015-03-04T01:12:47Z"}},'
            b'"LastChanged":"2015-03-04T01:12:47Z","ClusterName":"default",'
            b'"Hostname":"host-a"}'
        )
        self.assertEqual(decodeStateServices(state), [SERVICE])
        error = self.assertRaises(
            DecodeError, decodeStateServices, b'{"Servers":{"h":{"Services":[]}}}'
        )
        self.assertIn("Servers['h'].Services: expected an object", str(error))
