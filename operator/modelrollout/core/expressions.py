"""CEL success and failure conditions over a measurement's `result`.

Rules:
- `result` is a double for a scalar or a one-series vector, and a list of doubles for a vector with
  several series (write `result.all(x, x < 0.01)`).
- An expression that does not compile, or does not yield a boolean, is a `ConditionError` naming
  the expression; it is never treated as true or false.
- Compiled programs are cached: the same condition is evaluated at every interval.
"""

from __future__ import annotations

from functools import lru_cache

import cel


class ConditionError(ValueError):
    """A condition that cannot be compiled or evaluated."""


@lru_cache(maxsize=4096)
def compile_condition(expression: str) -> cel.Program:
    try:
        return cel.compile(expression)
    except (ValueError, RuntimeError, TypeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConditionError(f"condition {expression!r} does not compile: {first_line}") from None


def evaluate_condition(expression: str, result: float | tuple[float, ...]) -> bool:
    program = compile_condition(expression)
    value = list(result) if isinstance(result, tuple) else float(result)
    try:
        outcome = program.execute({"result": value})
    except (ValueError, RuntimeError, TypeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConditionError(f"condition {expression!r} failed on result={value!r}: {first_line}") from None
    if not isinstance(outcome, bool):
        raise ConditionError(f"condition {expression!r} gave {outcome!r}, not true or false")
    return outcome
