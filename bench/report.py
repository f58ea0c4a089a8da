"""Bench results: a list of tables printed with rich and written as JSON.

Every speed figure is a ratio against a named baseline timed in the same run (the machine
is shared and noisy), so each suite times this engine and its peers side by side."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *row: Any) -> None:
        if len(row) != len(self.columns):
            raise ValueError(
                f"{self.title}: row has {len(row)} cells, expected {len(self.columns)}"
            )
        self.rows.append(list(row))


@dataclass
class SuiteResult:
    suite: str
    tables: list[Table] = field(default_factory=list)
    goals: dict[str, bool] = field(default_factory=dict)  # goal description -> met?
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self, title: str, columns: Sequence[str]) -> Table:
        t = Table(title, list(columns))
        self.tables.append(t)
        return t


def timeit(fn: Callable[[], Any], *, repeat: int = 5, number: int = 1, warmup: int = 1) -> float:
    """Median seconds per call of `fn` over `repeat` rounds of `number` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    times.sort()
    return times[len(times) // 2]


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def print_result(res: SuiteResult) -> None:
    from rich.console import Console
    from rich.table import Table as RTable

    con = Console()
    for t in res.tables:
        rt = RTable(title=f"[{res.suite}] {t.title}")
        for c in t.columns:
            rt.add_column(c)
        for r in t.rows:
            rt.add_row(*[fmt(x) for x in r])
        con.print(rt)
        for n in t.notes:
            con.print(f"  [dim]{n}[/dim]")
    for goal, ok in res.goals.items():
        con.print(f"  goal {'[green]met[/green]' if ok else '[red]NOT met[/red]'}: {goal}")


def write_json(res: SuiteResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    res.meta.setdefault("machine", platform.platform())
    res.meta.setdefault("python", platform.python_version())
    res.meta.setdefault("when", time.strftime("%Y-%m-%dT%H:%M:%S"))
    p = out_dir / f"{res.suite}.json"
    p.write_text(json.dumps(asdict(res), indent=2, ensure_ascii=False, default=str))
    return p
