"""A small report model rendered to Markdown (images linked) and self-contained HTML.

A :class:`Report` is a list of sections; each section holds paragraphs, tables (lists of
row dicts) and figures (PNG files). ``write`` renders ``report.md`` with relative image links
and ``report.html`` with the images embedded as base64 data URIs, so the HTML file can be
mailed or opened anywhere on its own.

A number computed from MCMC chains enters a table or a paragraph as an :class:`Estimate`
carrying its reliability (``Reliability.as_dict()``): when the chains failed the convergence
check, it renders as ``"not converged: R-hat 2.67 (unreliable: 12.3)"``, never as a bare
result.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrogen.convergence import Reliability
from pyrogen.io import atomic_write_bytes
from pyrogen.tour.reliability import as_mapping

__all__ = ["Estimate", "Figure", "Report", "Section", "Table", "format_value"]


def format_value(value: Any) -> str:
    """Numbers to 4 significant digits, NaN/None as an em dash, :class:`Estimate` with its
    reliability, everything else as str."""
    if isinstance(value, Estimate):
        return format(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class Estimate:
    """A number from MCMC chains and the reliability of those chains, for rendering.

    ``format(estimate, spec)`` (also in f-strings and table cells) gives the number
    formatted by ``spec`` (:func:`format_value` when ``spec`` is empty) when the chains
    converged, and otherwise the reliability's label with the number demoted after it:
    ``"not converged: R-hat 2.67, bulk ESS 12 (unreliable: 12.34)"``.

    Args:
        value: the number.
        reliability: :class:`~pyrogen.convergence.Reliability`, its ``as_dict()`` or a dict
            of :func:`pyrogen.tour.reliability.combine`.
        unit: appended to the number (``" dB"``).
    """

    value: Any
    reliability: Reliability | Mapping[str, Any]
    unit: str = ""

    @property
    def converged(self) -> bool:
        return bool(as_mapping(self.reliability)["converged"])

    @property
    def label(self) -> str:
        return str(as_mapping(self.reliability)["label"])

    def __format__(self, spec: str) -> str:
        finite = isinstance(self.value, (int, float)) and math.isfinite(self.value)
        number = format(self.value, spec) if spec and finite else format_value(self.value)
        number += self.unit
        return number if self.converged else f"{self.label} (unreliable: {number})"

    def __str__(self) -> str:
        return format(self, "")


@dataclass
class Table:
    rows: list[dict[str, Any]]
    columns: list[str] | None = None
    caption: str = ""

    def header(self) -> list[str]:
        if self.columns is not None:
            return self.columns
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)


@dataclass
class Figure:
    path: Path
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figure] = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        self.blocks.append(paragraph)
        return self

    def table(
        self, rows: list[dict[str, Any]], columns: list[str] | None = None, caption: str = ""
    ) -> Section:
        self.blocks.append(Table(rows, columns, caption))
        return self

    def figure(self, path: str | os.PathLike[str], caption: str = "") -> Section:
        self.blocks.append(Figure(Path(path), caption))
        return self


@dataclass
class Report:
    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        section = Section(title)
        self.sections.append(section)
        return section

    # ------------------------------------------------------------------ markdown
    def to_markdown(self, root: Path) -> str:
        lines = [f"# {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        for section in self.sections:
            lines += [f"## {section.title}", ""]
            for block in section.blocks:
                if isinstance(block, str):
                    lines += [block, ""]
                elif isinstance(block, Table):
                    header = block.header()
                    if block.caption:
                        lines += [f"*{block.caption}*", ""]
                    lines.append("| " + " | ".join(header) + " |")
                    lines.append("|" + "---|" * len(header))
                    for row in block.rows:
                        cells = [format_value(row.get(c)).replace("|", "\\|") for c in header]
                        lines.append("| " + " | ".join(cells) + " |")
                    lines.append("")
                else:
                    rel = os.path.relpath(block.path, root)
                    lines += [f"![{block.caption}]({rel})", ""]
                    if block.caption:
                        lines += [f"*{block.caption}*", ""]
        return "\n".join(lines)

    # ---------------------------------------------------------------------- html
    def to_html(self) -> str:
        esc = html.escape
        parts = [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f"<title>{esc(self.title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
            "padding:0 1em;line-height:1.45;color:#222}table{border-collapse:collapse;"
            "margin:.8em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
            "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
            "figure{margin:1em 0}img{max-width:100%;image-rendering:pixelated}"
            "figcaption{color:#555;font-size:.92em}code{background:#f5f5f5;padding:0 .2em}"
            "</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        if self.intro:
            parts.append(f"<p>{_inline(self.intro)}</p>")
        for section in self.sections:
            parts.append(f"<h2>{esc(section.title)}</h2>")
            for block in section.blocks:
                if isinstance(block, str):
                    parts.append(f"<p>{_inline(block)}</p>")
                elif isinstance(block, Table):
                    header = block.header()
                    parts.append("<table>")
                    if block.caption:
                        parts.append(f"<caption>{esc(block.caption)}</caption>")
                    parts.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in header) + "</tr>")
                    for row in block.rows:
                        cells = "".join(f"<td>{esc(format_value(row.get(c)))}</td>" for c in header)
                        parts.append(f"<tr>{cells}</tr>")
                    parts.append("</table>")
                else:
                    data = base64.b64encode(block.path.read_bytes()).decode()
                    parts.append(
                        f"<figure><img alt='{esc(block.caption)}' "
                        f"src='data:image/png;base64,{data}'>"
                        f"<figcaption>{esc(block.caption)}</figcaption></figure>"
                    )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.html`` into directory ``out`` (atomically)."""
        root = Path(out)
        md, page = root / "report.md", root / "report.html"
        atomic_write_bytes(md, self.to_markdown(root).encode())
        atomic_write_bytes(page, self.to_html().encode())
        return md, page


def _inline(text: str) -> str:
    """Escape ``text`` and render `code` spans and **bold** (the Markdown we use)."""
    out, code, bold = [], False, False
    for i, piece in enumerate(html.escape(text).split("`")):
        if i:
            code = not code
        if code:
            out.append(f"<code>{piece}</code>")
            continue
        sub = piece.split("**")
        for j, s in enumerate(sub):
            if j:
                bold = not bold
                out.append("<b>" if bold else "</b>")
            out.append(s)
    return "".join(out)
