"""
The jinja2 sandbox that every template from outside renders in (HAProxy
templates, check arguments from labels): undefined names are errors, and
so is printing anything but text or a number, whose rendering would be a
Python repr (C{<function generate_lorem_ipsum at 0x7f...>}).
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateRuntimeError, Undefined
from jinja2.sandbox import SandboxedEnvironment


def printable(value: Any) -> Any:
    """
    C{value}, if printing it gives text a template means to print: a
    string or a number.  (An L{Undefined} passes, to fail as undefined.)

    @raise TemplateRuntimeError: for anything else.
    """
    if isinstance(value, str | int | float | Undefined):
        return value
    raise TemplateRuntimeError(
        f"cannot print {type(value).__name__}: only text and numbers print"
    )


def sandboxedEnvironment(**options: Any) -> SandboxedEnvironment:
    """
    A sandboxed environment with strict undefined names, no escaping and
    only printable values (see L{printable}); C{options} are jinja2's.
    """
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=printable, **options
    )
