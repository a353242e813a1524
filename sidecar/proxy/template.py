"""
The HAProxy configuration as a jinja2 template: the default one ships in
this package (C{haproxy.cfg.j2}), and C{haproxy.template} names a user's
own.  A template sees the L{ProxyModel}'s frontends and the settings below,
with every name sanitised (a record's name comes from another node, and
must not write HAProxy lines).  What an expression prints must be text or
a number: anything else (a function, a list) is an error, not its repr.
Pure, but for reading the template once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from importlib.resources import files

from jinja2 import TemplateError

from sidecar.sandbox import sandboxedEnvironment

from .model import Frontend, ProxyModel, haproxyName, sanitize

_ENVIRONMENT = sandboxedEnvironment(keep_trailing_newline=True)


class ProxyTemplateError(ValueError):
    """
    A template that does not parse or render; the message says where and
    why, in one line.
    """


@dataclass(frozen=True)
class TemplateSettings:
    """
    What a template gets besides the frontends.

    @ivar bind_ip: the well-known IP the frontends bind.
    @ivar admin_socket: HAProxy's runtime API socket, which sidecar uses.
    @ivar stats_listen: C{host:port} of the stats page, or empty for none.
    """

    bind_ip: str
    admin_socket: str
    stats_listen: str = ""
    user: str = ""
    group: str = ""
    maxconn: int = 4096


class ProxyTemplate:
    """
    A compiled template.
    """

    def __init__(self, source: str, where: str) -> None:
        self.where = where
        try:
            self._template = _ENVIRONMENT.from_string(source)
        except TemplateError as e:
            raise ProxyTemplateError(f"{where}: {_describe(e)}") from None

    @classmethod
    def default(cls) -> ProxyTemplate:
        source = files(__package__).joinpath("haproxy.cfg.j2").read_text()
        return cls(source, "the default HAProxy template")

    @classmethod
    def fromFile(cls, path: str) -> ProxyTemplate:
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError as e:
            raise ProxyTemplateError(f"{path}: cannot read: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ProxyTemplateError(f"{path}: not UTF-8 text: {e.reason}") from None
        return cls(source, path)

    def render(self, model: ProxyModel, settings: TemplateSettings) -> str:
        try:
            return self._template.render(
                frontends=tuple(_sanitized(f) for f in model.frontends),
                **asdict(settings),
            )
        except TemplateError as e:
            raise ProxyTemplateError(f"{self.where}: {_describe(e)}") from None


def _sanitized(frontend: Frontend) -> Frontend:
    """
    C{frontend} with the names that came raw from records sanitised: the
    service's as in Go, the servers' hosts as HAProxy names.
    """
    return replace(
        frontend,
        service=sanitize(frontend.service),
        servers=tuple(
            replace(s, hostname=haproxyName(s.hostname)) for s in frontend.servers
        ),
    )


def _describe(error: TemplateError) -> str:
    line = getattr(error, "lineno", None)
    where = f"line {line}: " if line else ""
    return f"{where}{error.message or type(error).__name__}"
