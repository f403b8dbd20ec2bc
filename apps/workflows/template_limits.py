"""Resource limits for the template sandbox: output size, repetition, exponents, render time.

Jinja's sandbox stops templates from reaching Python internals but not from asking for a
100 MB string (`'x' * 10**8`), a 200,000-digit number (`2 ** 200000`) or a long loop. The
environment here checks every operation that can grow a value before it runs, caps `range`,
and checks a deadline on each attribute, item or call, so a template fails with a clear
TemplateLimitError instead of exhausting the worker or the web process.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jinja2 import ChainableUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# The largest string or list a template may build (and its rendered text).
MAX_OUTPUT_CHARS = 64 * 1024
# The largest number a template may compute, in bits (about 300 decimal digits).
MAX_INT_BITS = 1024
MAX_RANGE = 1000
# Seconds one render may take.
RENDER_SECONDS = 1.0

# printf-style (`%99999d`, `%.99999f`, `%*d`) and str.format (`{:>99999}`) widths.
_PRINTF_WIDTH = re.compile(r"%[-+ #0]*(?:\d{5,}|\*|\d*\.(?:\d{5,}|\*))")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*:[^{}]*\d{5,}[^{}]*\}")
_SIZED_FILTERS = ("center", "indent", "wordwrap", "truncate", "batch", "slice", "format")

_state = threading.local()


class TemplateLimitError(SecurityError):
    """A template asked for more than the limits allow."""


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set):
        return len(value)
    return 0


def _check_size(value: Any) -> Any:
    if _size(value) > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(
            f"the template builds a value of {_size(value)} items; at most {MAX_OUTPUT_CHARS}"
        )
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"the template computes a number larger than 2**{MAX_INT_BITS}")
    return value


def _check_format_string(value: Any) -> None:
    if isinstance(value, str) and (_PRINTF_WIDTH.search(value) or _FORMAT_WIDTH.search(value)):
        raise TemplateLimitError("a format width or precision in a template is at most 9999")


def _check_int_argument(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"a size or count in a template is at most {MAX_OUTPUT_CHARS}")


def check_deadline() -> None:
    deadline = getattr(_state, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateLimitError(f"the template took longer than {RENDER_SECONDS:g} s to render")


def _trace_template_lines(frame: Any, event: str, arg: Any) -> Any:
    check_deadline()
    return _trace_template_lines


def _trace_calls(frame: Any, event: str, arg: Any) -> Any:
    # Only the code compiled from templates is traced line by line (a loop with an empty body
    # calls none of the hooks above): the deadline holds for any loop.
    if frame.f_code.co_filename == "<template>":
        check_deadline()
        return _trace_template_lines
    return None


@contextmanager
def render_deadline(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Bound the renders inside the block to `seconds` (in this thread)."""
    outer = getattr(_state, "deadline", None)
    previous_trace = sys.gettrace()
    _state.deadline = time.monotonic() + seconds
    if previous_trace is None:
        sys.settrace(_trace_calls)
    try:
        yield
    finally:
        if previous_trace is None:
            sys.settrace(None)
        _state.deadline = outer


def rendered_text(chunks: Iterator[str]) -> str:
    """Join a template's output, stopping once it exceeds the output limit."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"the template renders more than {MAX_OUTPUT_CHARS} characters"
            )
        parts.append(chunk)
    return "".join(parts)


def _bounded_range(*args: int) -> range:
    check_deadline()
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise TemplateLimitError(f"range() in a template gives at most {MAX_RANGE} items")
    return values


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check_deadline()
        for value in (*args, *kwargs.values()):
            _check_int_argument(value)
        if name == "format" and args:
            _check_format_string(args[0])
        return _check_size(func(*args, **kwargs))

    # Keep Jinja's markers (pass_context, pass_environment, ...) on the wrapper.
    bounded.__dict__.update(func.__dict__)
    for marker in ("jinja_pass_arg",):
        if hasattr(func, marker):
            setattr(bounded, marker, getattr(func, marker))
    return bounded


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the limits above. Operators that can grow a value are intercepted,
    which also keeps Jinja from computing them at compile time."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//", "/"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range
        for name in _SIZED_FILTERS:
            self.filters[name] = _bounded_filter(name, self.filters[name])
        replace = self.filters["replace"]

        def bounded_replace(
            eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None
        ) -> Any:
            check_deadline()
            grows = max(len(str(new)) - len(str(old)), 0)
            if grows and len(str(s)) * (grows + 1) > MAX_OUTPUT_CHARS:
                raise TemplateLimitError(
                    f"replace() would build more than {MAX_OUTPUT_CHARS} characters"
                )
            return _check_size(replace(eval_ctx, s, old, new, count))

        bounded_replace.jinja_pass_arg = replace.jinja_pass_arg  # type: ignore[attr-defined]
        self.filters["replace"] = bounded_replace

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_deadline()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            for a, b in ((left, right), (right, left)):
                if _size(a) and isinstance(b, int) and _size(a) * b > MAX_OUTPUT_CHARS:
                    raise TemplateLimitError(
                        f"the template repeats a value beyond {MAX_OUTPUT_CHARS} items"
                    )
        elif operator == "%":
            _check_format_string(left)
        elif operator == "+" and _size(left) + _size(right) > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(
                f"the template builds a value of more than {MAX_OUTPUT_CHARS} items"
            )
        try:
            result = super().call_binop(context, operator, left, right)
        except (ArithmeticError, ValueError) as exc:
            raise TemplateLimitError(f"{operator}: {exc}") from None
        return _check_size(result)

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_deadline()
        if attribute in ("format", "format_map"):
            _check_format_string(obj)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        check_deadline()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_deadline()
        for value in (*args, *kwargs.values()):
            _check_int_argument(value)
        return _check_size(super().call(__context, __obj, *args, **kwargs))


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int | float) and isinstance(exponent, int | float):
        if abs(exponent) > MAX_INT_BITS:
            raise TemplateLimitError(f"an exponent in a template is at most {MAX_INT_BITS}")
        big = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
        if big and int(base).bit_length() * int(exponent) > MAX_INT_BITS:
            raise TemplateLimitError(
                f"the template computes a number larger than 2**{MAX_INT_BITS}"
            )


def bounded_environment() -> BoundedSandbox:
    return BoundedSandbox(undefined=ChainableUndefined, autoescape=False)
