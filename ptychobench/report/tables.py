"""Text of a report's tables: numbers and intervals, Markdown tables, and the rows
(model × strategy) and columns (k) of a matrix of cells."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

MISSING: Final = "—"
"""What a table shows for a number that is absent."""
NO_STRATEGY: Final = "none"
"""The strategy of answers given without examples (k = 0, the classifier)."""
STRATEGY_ORDER: Final[tuple[str, ...]] = ("ssfs", "rfs", "semantic", NO_STRATEGY)
"""Row order within a model (the paper lists SSFS first); other strategies follow by name."""


def number(value: float | None, form: str = ".3f", missing: str = MISSING) -> str:
    """``value`` formatted by ``form``, or ``missing`` for None."""
    return missing if value is None else format(value, form)


def interval(low: float | None, high: float | None, form: str = ".3f") -> str:
    """``[low, high]``."""
    return f"[{number(low, form)}, {number(high, form)}]"


def estimate(value: float | None, low: float | None, high: float | None, form: str = ".3f") -> str:
    """``value [low, high]``."""
    return f"{number(value, form)} {interval(low, high, form)}"


def strategy_rank(strategy: str) -> tuple[int, str]:
    """Sort key of a strategy: :data:`STRATEGY_ORDER`, then by name."""
    if strategy in STRATEGY_ORDER:
        return STRATEGY_ORDER.index(strategy), strategy
    return len(STRATEGY_ORDER), strategy


def strategy_label(strategy: str) -> str:
    """A strategy as a table shows it."""
    return "no examples" if strategy == NO_STRATEGY else strategy.upper()


def rows_and_ks(cells: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[str, str]], list[int]]:
    """(model, strategy) rows in the cells' order and the sorted k columns."""
    rows = list(dict.fromkeys((cell["model"], cell["strategy"]) for cell in cells))
    return rows, sorted({cell["k"] for cell in cells})


def md_text(value: object) -> str:
    """A value as one line of a Markdown table cell (whitespace collapsed, ``|`` escaped)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table, one line an element."""
    lines = [
        "| " + " | ".join(md_text(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in rows]
    return lines


__all__ = [
    "MISSING",
    "NO_STRATEGY",
    "STRATEGY_ORDER",
    "estimate",
    "interval",
    "md_table",
    "md_text",
    "number",
    "rows_and_ks",
    "strategy_label",
    "strategy_rank",
]
