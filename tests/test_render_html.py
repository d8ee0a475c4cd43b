"""The HTML drift report: one self-contained page (no URL of any kind), the same content as the
other formats, a chart of the categories, and every platform name escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.drift import CATEGORIES, LABELS, DriftReport
from reconcile.render.html import render_drift_html
from reconcile.scope import quote
from tests.test_drift import model, report_for, version

SCRIPT_NAME = '<script>alert("x")</script><img src=x onerror=alert(1)>'
VOID = {"meta", "br", "wbr", "img", "input", "link", "hr", "rect"}


class Page(HTMLParser):
    """Collects the tags, attributes and text of a page, and checks the tags nest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:]}")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors
    assert not parser.open, parser.open
    return parser


def assert_self_contained(page: str) -> None:
    """No external resource, and no URL at all: nothing to fetch, nothing to follow."""
    lowered = page.lower()
    assert "http://" not in lowered
    assert "https://" not in lowered
    assert "url(" not in lowered
    assert "@import" not in lowered
    parsed = parse(page)
    for tag, attributes in parsed.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "img", "image", "use")
        for name, value in attributes.items():
            assert name not in ("src", "href", "xlink:href", "srcset", "action", "data")
            assert not name.startswith("on"), (tag, name)
            assert "//" not in (value or ""), (tag, name, value)


def hostile_report(tmp_path: Path) -> DriftReport:
    return report_for(
        tmp_path,
        '[[models]]\nprovider = "p"\nname = "bot"\ndescription = "declared"\n',
        [
            model("m1", "bot", version("m1", "v1", 1), description='live "<b>" & co'),
            model("m2", SCRIPT_NAME, version("m2", "v<1>", 1)),
        ],
    )


def test_platform_names_are_escaped(tmp_path: Path) -> None:
    page = render_drift_html(hostile_report(tmp_path))
    assert "<script" not in page
    assert "<img" not in page
    # Quoted in addresses; a name may break after "/" and "-" (<wbr>) only.
    assert "&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/<wbr>script&gt;" in page
    assert_self_contained(page)
    text = "".join(parse(page).text)
    assert f"p/{quote(SCRIPT_NAME)}" in text  # its address, as scope.py quotes it
    assert '"live \\"<b>\\" & co"' in text


def test_the_demo_page_is_self_contained_and_says_everything(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "drift.html"
    assert main(["drift", str(demo), "--format", "html", "--output", str(target)]) == 2
    capsys.readouterr()
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert_self_contained(page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    parse(page)  # the page as it is nests; its text without the <wbr> breaks:
    text = " ".join(parse(page.replace("<wbr>", "")).text)
    for phrase in (
        "36 drifted",
        "Coverage",
        "22.2%",
        "fabric-demo/summarizer",
        '"daily summaries"',
        '"nightly summaries"',
        "fabric-demo/classifier",
        "fabric-demo/legacy-qa",
        "with 5 versions",
        "support-bot-canary",
        "fabric-demo/prod-translator",
        "retention_keep_latest",
        "qianfan-demo",
    ):
        assert phrase in text, phrase
    for category in CATEGORIES:
        assert LABELS[category][0] in text
    # The chart: one bar per category, each labelled with its count.
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<rect") == len(CATEGORIES)
    bars = [int(width) for width in re.findall(r'<rect [^>]*width="(\d+)"', svg)]
    assert max(bars) == bars[[c.value for c in CATEGORIES].index("unmanaged")]  # 23, the most
    assert ">23</text>" in svg and ">9</text>" in svg
    # The per-provider table carries the same counts as the JSON.
    assert re.search(r"<td class=\"n\">31</td><td class=\"n\">16\.1%</td>", page)


def test_an_empty_report_draws_no_bar_out_of_the_chart(tmp_path: Path) -> None:
    report = report_for(tmp_path, '[[models]]\nprovider = "p"\nname = "x"\n', [], scope="declared")
    page = render_drift_html(report)
    assert_self_contained(page)
    assert 'width="0"' in page
    assert "in sync" in page
