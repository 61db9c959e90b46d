"""A command line that cannot be run as typed (an unknown command or option, a missing argument, a value of the
wrong kind or out of its range, no command at all) answers with the usage line of the command and one sentence,
exit status 2: never a traceback, never a page of help nobody asked for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

PROG = "masksmith"


def usage_error(exc: typer.TyperException, command: Any, args: Sequence[str]) -> tuple[str, str]:
    """(usage line, sentence) for a usage error raised while parsing `args` for the click `command`."""
    ctx = getattr(exc, "ctx", None)
    usage = ctx.get_usage() if ctx is not None else usage_of(command, args)
    return usage, sentence(exc)


def usage_of(command: Any, args: Sequence[str]) -> str:
    """The usage line of the (sub)command `args` name, for errors that come without their context."""
    ctx = typer.Context(command, info_name=PROG)
    for word in args:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            if word.startswith("-") or not hasattr(command, "commands"):
                break
            continue
        command, ctx = sub, typer.Context(sub, parent=ctx, info_name=word)
    return command.get_usage(ctx)


def sentence(exc: typer.TyperException) -> str:
    """The one sentence that says what is wrong, in the words of this command line."""
    ctx = getattr(exc, "ctx", None)
    if exc.format_message().startswith("Missing command") and ctx is not None:
        commands = list(getattr(ctx.command, "commands", {}))
        where = f"{ctx.command_path} " if ctx.parent is not None else ""
        return f"no {where.removeprefix(PROG + ' ')}command given; give one of: {', '.join(commands)} " \
               f"({ctx.command_path} --help says what each does)."
    param = getattr(exc, "param", None)
    if type(exc).__name__ == "BadParameter" and param is not None and _is_number(param):
        return number_sentence(param, _given(exc))
    if type(exc).__name__ == "BadParameter" and param is None and not getattr(exc, "param_hint", None):
        return exc.message  # a command's own sentence about what it was given
    text = exc.format_message().replace("Value error, ", "").strip()
    text = text[:1].lower() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def number_sentence(param: Any, given: Any) -> str:
    """'--k must be a whole number from 1 to 64, not 0.' (nan and inf are never in a range)"""
    whole = param.type_descriptor.annotation is int
    kind = "a whole number" if whole else "a number"
    low, high = param.min, param.max
    if low is not None and high is not None:
        span = f" from {_number(low)} to {_number(high)}"
    elif low is not None:
        span = f" of at least {_number(low)}"
    elif high is not None:
        span = f" of at most {_number(high)}"
    else:
        span = ""
    name = max(param.opts, key=len) if param.opts else param.name
    return f"{name} must be {kind}{span}, not {given}."


def _is_number(param: Any) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    return descriptor is not None and descriptor.annotation in (int, float)


def _given(exc: BaseException) -> str:
    """The value as typed, from the validation error behind `exc`."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        found = errors()
        if found and "input" in found[0]:
            value = found[0]["input"]
            return str(value) if str(value).strip() else repr(value)
    return "the value given"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
