"""
Check arguments as templates: the Go Sidecar's syntax, rendered in
jinja2's sandbox, with clear errors.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Service
from sidecar.health.checkers import CheckArgumentError
from sidecar.health.templating import TemplateProblem, renderArgs

SERVICE = Service(
    id="0123456789ab",
    name="awesome-svc",
    image="nginx",
    hostname="host-a",
    ports=(
        Port("tcp", 32768, 9500, "127.0.0.1"),
        Port("udp", 32769, 53, "127.0.0.1"),
        Port("tcp", 32770, 0, "127.0.0.1"),
    ),
)


def render(args: str) -> str:
    return renderArgs(args, SERVICE, "127.0.1.5")


class GoSyntaxTests(SynchronousTestCase):
    def test_theSeedsLabel(self) -> None:
        self.assertEqual(
            render("http://{{ host }}:{{ tcp 9500 }}/"), "http://127.0.1.5:32768/"
        )

    def test_udpAndContainer(self) -> None:
        self.assertEqual(
            render("dig @{{host}} -p {{udp 53}} {{ container }}"),
            "dig @127.0.1.5 -p 32769 host-a",
        )

    def test_goFieldsOfTheService(self) -> None:
        self.assertEqual(render("{{ .Name }}/{{ .ID }}"), "awesome-svc/0123456789ab")

    def test_jinjaCallsWorkToo(self) -> None:
        self.assertEqual(render("{{ tcp(9500) }}"), "32768")

    def test_plainArgumentsAreUntouched(self) -> None:
        self.assertEqual(render("http://127.0.0.1:80/{x}"), "http://127.0.0.1:80/{x}")


class ProblemTests(SynchronousTestCase):
    def assertProblem(self, args: str, *fragments: str) -> None:
        problem = self.assertRaises(TemplateProblem, render, args)
        self.assertIsInstance(problem, CheckArgumentError)
        message = str(problem)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_aServicePortTheServiceDoesNotPublish(self) -> None:
        self.assertProblem(
            "{{ tcp 8080 }}", "no tcp port with ServicePort 8080 in '{{ tcp 8080 }}'"
        )

    def test_theRightTypeOnly(self) -> None:
        self.assertProblem("{{ udp 9500 }}", "no udp port with ServicePort 9500")

    def test_notANumber(self) -> None:
        self.assertProblem("{{ tcp http }}", "not a port number: 'http'")

    def test_anUnknownName(self) -> None:
        self.assertProblem("{{ hostname }}", "cannot render", "'hostname' is undefined")

    def test_anUnknownField(self) -> None:
        self.assertProblem("{{ .Owner }}", "cannot render", "Owner")

    def test_unparseable(self) -> None:
        self.assertProblem("http://{{ host }", "cannot parse 'http://{{ host }'")

    def test_onlyTheGoFormsAreAllowed(self) -> None:
        for args in (
            "{{ ''.__class__.__mro__ }}",
            "{{ tcp.__globals__ }}",
            "{{ 'a' * 100000000 }}",
            "{{ range(10**9) | list }}",
        ):
            self.assertProblem(args, "is not one of host, container, tcp N, udp N")
        self.assertProblem(
            "{% for a in range(100000) %}{% endfor %}", "only {{ ... }} expressions"
        )

    def test_aNameThatIsNotAValueIsAnErrorNotARepr(self) -> None:
        for args in ("{{ lipsum }}", "{{ tcp }}", "{{ service }}", "{{ .Ports }}"):
            self.assertProblem(args, "cannot render", "only text and numbers print")
