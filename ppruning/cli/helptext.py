"""How every ``ppruning`` command's help reads: plain text, and each option with its default.

Module docstrings double as command descriptions; their reStructuredText markup
(````ppruning tasks````, ``:func:`x```) is for the API docs, not a terminal.
"""

from __future__ import annotations

import argparse
import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str | None) -> str | None:
    """``text`` without reST literals and roles: ````--task```` -> ``--task``, ``:func:`a.b``` -> ``a.b``."""
    if text is None:
        return None
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped paragraph by paragraph, a paragraph with indented lines (examples, lists)
    kept as written; every
    option's help ends with its default.

    A default of ``None``, a flag's boolean or an empty list means "not given" (the method's
    or the task's own default applies, which the help text says), so it is not printed.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.strip("\n").split("\n\n")
        return "\n\n".join(
            "\n".join(indent + line for line in paragraph.splitlines())
            if any(line.startswith(" ") for line in paragraph.splitlines())
            else super(HelpFormatter, self)._fill_text(paragraph, width, indent)
            for paragraph in paragraphs
        )

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = action.default is None or isinstance(action.default, bool) or action.default in ([], argparse.SUPPRESS)
        if "%(default)" in text or unset or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def tidy(parser: argparse.ArgumentParser) -> None:
    """Plain-text description and defaults in the help of ``parser`` and of its subcommands."""
    parser.formatter_class = HelpFormatter
    parser.description = plain_text(parser.description)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                tidy(child)
