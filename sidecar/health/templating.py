"""
Check arguments as templates, the Go Sidecar's way: C{{{ host }}} is the
node's advertised IP, C{{{ tcp 8080 }}} and C{{{ udp 53 }}} the published
port that carries that ServicePort, C{{{ container }}} the service's
hostname, and C{{{ .Name }}} (any Go field of the service) its value.

The Go syntax is rewritten into jinja2's (C{tcp 8080} becomes
C{tcp(8080)}, C{.Name} becomes C{service.Name}) and rendered in jinja2's
sandbox, so a label cannot reach anything but these values, and an
expression must print text or a number (C{{{ lipsum }}} is an error, not
a function's repr).  Pure.  jinja2 is imported with the first template
rendered: a node whose checks hold none never loads it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from sidecar.catalog import Service
from sidecar.catalog.codec import serviceToJSON

from .checkers import CheckArgumentError

if TYPE_CHECKING:
    from jinja2 import Environment, Template

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_GO_PORT_CALL = re.compile(r"^\s*(tcp|udp)\s+(\S+)\s*$")
_GO_FIELD = re.compile(r"^\s*\.([A-Za-z_]\w*)\s*$")
# The expressions a template may hold once rewritten from Go's syntax.
_ALLOWED = re.compile(
    r"host|container|(?:tcp|udp)\((?:\d+|'[^']*')\)|service\['[A-Za-z_]\w*'\]|[A-Za-z_]\w*"
)


class TemplateProblem(CheckArgumentError):
    """
    Check arguments that do not render; the message says why.
    """


def isTemplate(args: str) -> bool:
    return "{{" in args or "{%" in args


def renderArgs(args: str, service: Service, advertiseHost: str) -> str:
    """
    Render C{args} for C{service}.

    @raise TemplateProblem: when it does not parse or render, or names a
        port the service does not publish.
    """
    if not isTemplate(args):
        return args
    from jinja2 import TemplateError

    template = _compiled(args)

    def port(portType: str) -> object:
        def published(servicePort: object) -> int:
            for candidate in service.ports:
                if candidate.type == portType and candidate.servicePort == _int(
                    servicePort
                ):
                    return candidate.port
            raise TemplateProblem(
                f"no {portType} port with ServicePort {servicePort} in {args!r}"
            )

        return published

    try:
        return template.render(
            host=advertiseHost,
            container=service.hostname,
            service=serviceToJSON(service),
            tcp=port("tcp"),
            udp=port("udp"),
        )
    except TemplateProblem:
        raise
    except (TemplateError, TypeError, ValueError) as e:
        raise TemplateProblem(f"cannot render {args!r}: {e}") from None


@lru_cache(maxsize=1024)
def _compiled(args: str) -> Template:
    # Only the forms above: no statements, loops or arithmetic, so that a
    # label cannot make rendering slow or huge.
    if "{%" in args or "{#" in args:
        raise TemplateProblem(f"only {{{{ ... }}}} expressions are allowed: {args!r}")
    converted = _EXPRESSION.sub(_fromGo, args)
    for expression in _EXPRESSION.findall(converted):
        if not _ALLOWED.fullmatch(expression.strip()):
            raise TemplateProblem(
                f"cannot render {args!r}: {{{{{expression}}}}} is not one of "
                "host, container, tcp N, udp N, .Field"
            )
    from jinja2 import TemplateError

    try:
        return _environment().from_string(converted)
    except TemplateError as e:
        raise TemplateProblem(f"cannot parse {args!r}: {e}") from None


@lru_cache(maxsize=1)
def _environment() -> Environment:
    from sidecar.sandbox import sandboxedEnvironment

    return sandboxedEnvironment()


def _fromGo(match: re.Match[str]) -> str:
    expression = match.group(1)
    call = _GO_PORT_CALL.match(expression)
    if call is not None:
        argument = call.group(2)
        if not argument.isdigit():
            argument = repr(argument)  # reported as not a port number
        return f"{{{{ {call.group(1)}({argument}) }}}}"
    field = _GO_FIELD.match(expression)
    if field is not None:
        return f"{{{{ service[{field.group(1)!r}] }}}}"
    return match.group(0)


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise TemplateProblem(f"not a port number: {value!r}")
