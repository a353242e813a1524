"""
The Go Sidecar's JSON, to the byte: timestamps, key order, escaping, and
errors that name the field at fault.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
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
from sidecar.catalog.timestamps import (
    EARLIEST,
    LATEST,
    TimestampError,
    formatTimestamp,
    later,
    parseTimestamp,
)

# RFC 3339 text as a peer might send it: any date and time the regex takes
# (impossible ones too), up to nine fractional digits, any offset.
rfc3339 = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
    st.one_of(st.just(""), st.from_regex(r"\A\.[0-9]{1,9}\Z")),
    st.one_of(
        st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59"]),
        st.builds(
            "{}{:02d}:{:02d}".format,
            st.sampled_from("+-"),
            st.integers(0, 99),
            st.integers(0, 99),
        ),
    ),
)


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

    def test_onlyWhatGoCanWriteBackIsAccepted(self) -> None:
        """
        A stamp that is before year 1 or after year 9999 once in UTC parses
        as text but could not be written back: it is refused.
        """
        self.assertEqual(formatTimestamp(EARLIEST), "0001-01-01T00:00:00Z")
        self.assertEqual(formatTimestamp(LATEST), "9999-12-31T23:59:59.999999999Z")
        for text in (
            "0001-01-01T00:00:00+01:00",
            "0000-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999999-00:01",
        ):
            error = self.assertRaises(TimestampError, parseTimestamp, text)
            self.assertIn(repr(text), str(error))
        self.assertRaises(TimestampError, formatTimestamp, LATEST + 1)
        self.assertRaises(TimestampError, formatTimestamp, EARLIEST - 1)

    def test_laterStopsAtTheLastWritableInstant(self) -> None:
        self.assertEqual(later(LATEST, 1), LATEST)
        self.assertEqual(later(LATEST - 5, 10**9), LATEST)
        self.assertEqual(later(0, 7), 7)
        self.assertEqual(
            formatTimestamp(later(LATEST, 10**18)), formatTimestamp(LATEST)
        )

    @settings(max_examples=500, deadline=None)
    @given(rfc3339)
    def test_everyAcceptedTimestampRoundTrips(self, text: str) -> None:
        """
        Decode, encode, decode: whatever is accepted can be written in Go's
        form, and that form reads back as the same instant.
        """
        try:
            stamp = parseTimestamp(text)
        except TimestampError:
            return
        written = formatTimestamp(stamp)
        self.assertEqual(parseTimestamp(written), stamp)
        # So can a stamp derived from it (a refutation, an expiry).
        self.assertGreaterEqual(parseTimestamp(formatTimestamp(later(stamp, 1))), stamp)


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


services = st.builds(
    Service,
    id=st.text(min_size=1, max_size=8),
    name=st.text(max_size=8),
    created=st.integers(EARLIEST, LATEST),
    hostname=st.text(max_size=8),
    updated=st.integers(EARLIEST, LATEST),
    status=st.sampled_from(Status),
    ports=st.lists(
        st.builds(
            Port, type=st.sampled_from(["tcp", "udp"]), port=st.integers(0, 65535)
        ),
        max_size=2,
    ).map(tuple),
)


class ServiceJSONTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(services)
    def test_everyDecodedRecordEncodesAndDecodesAgain(self, service: Service) -> None:
        """
        Any record the decoder accepts can be encoded (the API, push-pull)
        and decodes to itself.
        """
        self.assertEqual(decodeService(encodeService(service)), service)

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
            (
                b'{"ID":"x","Created":"0001-01-01T00:00:00+01:00"}',
                "Service.Created: outside years 1 to 9999",
            ),
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
