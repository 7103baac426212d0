"""The report's pages, rendered from what is on disk: its sections and the forecast rung.

``scaling report`` (``analysis.report.make_report``) computes the fits, tables and figures and
writes the pages' content as ``report-sections.json`` (one entry per ``Section``: title,
paragraphs, table, figure file names, details); ``render_pages(out)`` turns that file, plus the
forecast rung's ``forecast.json`` when one is in ``out`` (``analysis.rung``), into
``summary.md`` and a self-contained ``index.html``. The report and the forecast command
(``scaling sweep forecast``) both call it, so neither splices text into the other's page and
re-rendering needs no refit. The rung section goes right after the Answer it checks.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling import rundir

SECTIONS = "report-sections.json"
FORECAST = "forecast.json"  # the forecast rung's record (analysis.rung.write_forecast)
WIDE_FIGURES = ("sensitivity",)  # full width in the HTML figure grid
RUNG_TITLE = "Forecast rung: predicted vs actual"


@dataclass
class Section:
    """One section of the report's pages.

    Attributes:
        title: the heading (``#`` for the first section, ``##`` for the rest).
        paragraphs: markdown-ish paragraphs (``**bold**``, `` `code` ``; ``- `` for bullets).
        table: ``(header, rows)`` of strings, or ``None``.
        figures: ``(PNG path, caption)``; the PNG lies in the report folder.
        details: ``(summary, preformatted text)`` shown folded.
        css_class: the HTML section's class (``headline``, ``warn``, ``rung``).
        pre: preformatted text shown open (the rung's check), or ``""``.
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None
    figures: list[tuple[Path, str]] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)  # (summary, preformatted text)
    css_class: str = ""
    pre: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; figures by file name (they lie beside the pages)."""
        return {
            "title": self.title,
            "paragraphs": list(self.paragraphs),
            "table": None if self.table is None else [self.table[0], self.table[1]],
            "figures": [[p.name, caption] for p, caption in self.figures],
            "details": [list(d) for d in self.details],
            "css_class": self.css_class,
            "pre": self.pre,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], out: Path) -> Section:
        """Inverse of ``to_dict``; figure names resolve against the report folder ``out``."""
        table = d.get("table")
        return cls(
            title=d["title"],
            paragraphs=list(d.get("paragraphs", [])),
            table=None if table is None else (list(table[0]), [list(r) for r in table[1]]),
            figures=[(out / name, caption) for name, caption in d.get("figures", [])],
            details=[(a, b) for a, b in d.get("details", [])],
            css_class=d.get("css_class", ""),
            pre=d.get("pre", ""),
        )


def write_sections(out: str | Path, sections: list[Section]) -> Path:
    """Write ``out/report-sections.json`` atomically; returns its path."""
    path = Path(out) / SECTIONS
    rundir.write_json(path, [s.to_dict() for s in sections], indent=1, sort_keys=False)
    return path


def read_sections(out: str | Path) -> list[Section] | None:
    """The sections in ``out/report-sections.json``, or ``None`` when there is none.

    Raises:
        ValueError: the file is damaged (naming it and the fix).
    """
    path = Path(out) / SECTIONS
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [Section.from_dict(d, Path(out)) for d in doc]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise ValueError(
            f"{path} is damaged ({type(e).__name__}: {e}); run `scaling report` again"
        ) from None


def rung_section(record: dict[str, Any]) -> Section:
    """The forecast rung's section: predicted against actual (``analysis.rung.forecast_text``)."""
    from analysis.rung import forecast_text

    return Section(RUNG_TITLE, css_class="rung", pre=forecast_text(record))


def compose(sections: list[Section], out: str | Path) -> list[Section]:
    """``sections`` plus the rung's section from ``out/forecast.json``, right after the Answer.

    Without an Answer section the rung's goes last; without ``forecast.json`` (or with a
    damaged one, which the forecast command rewrites) ``sections`` is returned unchanged.
    """
    try:
        record = json.loads((Path(out) / FORECAST).read_text(encoding="utf-8"))
        rung = rung_section(record)
    except (OSError, ValueError, KeyError, TypeError):
        return list(sections)
    out_sections = [s for s in sections if s.css_class != "rung"]
    i = next((k + 1 for k, s in enumerate(out_sections) if s.title == "Answer"), None)
    i = len(out_sections) if i is None else i
    return out_sections[:i] + [rung] + out_sections[i:]


def render_pages(out: str | Path, sections: list[Section] | None = None) -> list[Path]:
    """Write ``summary.md`` and ``index.html`` in ``out`` from its sections and forecast.

    Args:
        out: the report folder.
        sections: the report's sections; default ``read_sections(out)``.

    Returns:
        The pages written (empty when ``out`` holds no report sections).

    Raises:
        ValueError: ``report-sections.json`` is damaged.
    """
    out = Path(out)
    if sections is None:
        sections = read_sections(out)
        if sections is None:
            return []
    shown = compose(sections, out)
    rundir.atomic_write_text(out / "summary.md", markdown_page(shown))
    rundir.atomic_write_text(out / "index.html", html_page(shown, out))
    return [out / "summary.md", out / "index.html"]


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def markdown_page(sections: list[Section]) -> str:
    """``summary.md``: one ``##`` heading per section (``#`` for the first)."""
    lines: list[str] = []
    for i, sec in enumerate(sections):
        lines += [f"{'#' if i == 0 else '##'} {sec.title}", ""]
        for p in sec.paragraphs:
            lines += [p, ""]
        if sec.pre:
            lines += ["```", sec.pre, "```", ""]
        if sec.table:
            head, rows = sec.table
            lines.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        for path, caption in sec.figures:
            lines += [f"![{path.stem}]({path.name})", "", f"*{caption}*", ""]
        for summary, text in sec.details:
            lines += [
                f"<details><summary>{summary}</summary>",
                "",
                "```",
                text,
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:0 auto;
 padding:0 16px 40px;line-height:1.45;color:#222}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.headline{background:#eef5ff;border:1px solid #bcd;border-radius:6px;padding:4px 16px 10px}
.warn{background:#fff6e5;border:1px solid #eccb85;border-radius:6px;padding:4px 16px}
.rung{background:#f1f8ee;border:1px solid #9c9;border-radius:6px;padding:4px 16px;
 overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0;table-layout:auto}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;
 overflow-wrap:anywhere}
th{background:#f4f4f4}
pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:16px}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figure.wide{grid-column:1/-1}
figcaption{font-size:13px;color:#555}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
code{overflow-wrap:anywhere}
"""


def _inline(s: str) -> str:
    """Escape, then render the two markdown marks used in paragraphs (**bold**, `code`)."""
    out = html.escape(s)
    parts = out.split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def html_page(sections: list[Section], out: Path) -> str:
    """``index.html``, self-contained: the figures (PNG files in ``out``) embedded as base64."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>Scaling-law report</title><style>{_CSS}</style></head><body>",
    ]
    for i, sec in enumerate(sections):
        tag = "h1" if i == 0 else "h2"
        cls = f" class='{sec.css_class}'" if sec.css_class else ""
        parts.append(f"<section{cls}><{tag}>{html.escape(sec.title)}</{tag}>")
        bullets = [p for p in sec.paragraphs if p.startswith("- ")]
        for p in sec.paragraphs:
            if not p.startswith("- "):
                parts.append(f"<p>{_inline(p)}</p>")
        if bullets:
            parts.append("<ul>" + "".join(f"<li>{_inline(b[2:])}</li>" for b in bullets) + "</ul>")
        if sec.pre:
            parts.append(f"<pre>{html.escape(sec.pre)}</pre>")
        if sec.table:
            head, rows = sec.table
            parts.append(
                "<table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                + "</tr></thead><tbody>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in rows
                )
                + "</tbody></table>"
            )
        if sec.figures:
            parts.append("<div class='figs'>")
        for path, caption in sec.figures:
            b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            wide = " class='wide'" if path.stem in WIDE_FIGURES else ""
            parts.append(
                f"<figure{wide}><img alt='{html.escape(path.stem)}' "
                f"src='data:image/png;base64,{b64}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        if sec.figures:
            parts.append("</div>")
        for summary, text in sec.details:
            parts.append(
                f"<details><summary>{html.escape(summary)}</summary>"
                f"<pre>{html.escape(text)}</pre></details>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
