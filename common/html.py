"""Small HTML helpers: every page is static, self-contained and links files by relative path."""

from __future__ import annotations

from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; } td { white-space: nowrap; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
img.figure { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.cases { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 0.8em; }
.case { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em; font-size: 0.8em; background: #fafafa; }
.case .pair { display: flex; gap: 6px; } .case figure { margin: 0; text-align: center; }
.case figcaption { font-size: 0.85em; color: #777; }
.case img { image-rendering: pixelated; width: 96px; height: 96px; object-fit: contain; background: #000; }
.headline { font-size: 1.05em; line-height: 1.5; background: #f6f8fb; border-left: 4px solid #4c72b0;
  padding: 0.6em 1em; margin: 1em 0; } .headline p { margin: 0.3em 0; }
.warn { color: #9a5b00; }
.case .path { word-break: break-all; color: #555; }
.bad { color: #b00020; } .good { color: #0a7d28; } .muted { color: #777; }
"""


def page(title: str, body: str) -> str:
    """A complete HTML document; ``title`` is escaped, ``body`` must already be."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def table(header: list[str], rows: list[list[object]], name_columns: int = 1) -> str:
    """An HTML table; every cell is escaped; the first ``name_columns`` are left-aligned."""
    def cell(tag: str, index: int, value: object) -> str:
        css = ' class="name"' if index < name_columns else ""
        return f"<{tag}{css}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def link(href: str, text: str) -> str:
    """An escaped relative link."""
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def figure(src: str, alt: str) -> str:
    """An escaped image."""
    return f'<img class="figure" src="{escape(src, quote=True)}" alt="{escape(alt, quote=True)}">'
