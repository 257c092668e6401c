"""The AEF template, loaded from ``template.toml``: tables, columns, patterns, vocabularies."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent / "template.toml"


@dataclass(frozen=True)
class Column:
    key: str
    heading: str
    pattern: re.Pattern[str] | None  # None: the value comes from ``vocabulary``
    pattern_name: str
    vocabulary: tuple[str, ...]
    vocabulary_name: str
    required: bool

    def __post_init__(self) -> None:
        assert (self.pattern is None) != (not self.vocabulary), self


@dataclass(frozen=True)
class Table:
    key: str
    sheet: str
    title: str
    columns: tuple[Column, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(column.key for column in self.columns)

    @property
    def headings(self) -> tuple[str, ...]:
        return tuple(column.heading for column in self.columns)


@dataclass(frozen=True)
class Template:
    name: str
    heading_row: int
    first_data_row: int
    tables: tuple[Table, ...]
    vocabularies: dict[str, tuple[str, ...]]
    date_tolerance_days: int  # consistency checks: how far a date may be from the ledger's

    def table(self, key: str) -> Table:
        for table in self.tables:
            if table.key == key:
                return table
        raise KeyError(key)

    def by_sheet(self, sheet: str) -> Table | None:
        return next((table for table in self.tables if table.sheet == sheet), None)


def _column(raw: dict[str, Any], patterns: dict[str, str], vocabularies: dict[str, Any]) -> Column:
    pattern_name, vocabulary_name = raw.get("pattern", ""), raw.get("vocabulary", "")
    return Column(
        key=raw["key"],
        heading=raw["heading"],
        pattern=re.compile(patterns[pattern_name]) if pattern_name else None,
        pattern_name=pattern_name,
        vocabulary=tuple(vocabularies[vocabulary_name]) if vocabulary_name else (),
        vocabulary_name=vocabulary_name,
        required=bool(raw.get("required", False)),
    )


def _table(raw: dict[str, Any], patterns: dict[str, str], vocabularies: dict[str, Any]) -> Table:
    columns = tuple(_column(column, patterns, vocabularies) for column in raw["columns"])
    return Table(key=raw["key"], sheet=raw["sheet"], title=raw["title"], columns=columns)


@cache
def template(path: Path = TEMPLATE) -> Template:
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    patterns, vocabularies = raw["patterns"], raw["vocabularies"]
    tables = tuple(_table(table, patterns, vocabularies) for table in raw["tables"])
    return Template(
        name=raw["template"]["name"],
        heading_row=int(raw["template"]["heading_row"]),
        first_data_row=int(raw["template"]["first_data_row"]),
        tables=tables,
        vocabularies={name: tuple(values) for name, values in vocabularies.items()},
        date_tolerance_days=int(raw["consistency"]["date_tolerance_days"]),
    )
