"""The HTML report and plan at 3,000 models: grouped by model, what apply would delete open,
each object's age (from the report's time) and creator, names broken only after "/" and "-",
a bounded size; and, where Chromium is installed, the page rendered headless."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reconcile.drift import DriftReport
from reconcile.plan import Plan
from reconcile.render.html import age, render_drift_html, render_plan_html
from tests.scale_plans import scale_plan_and_report
from tests.test_render_html import parse

#: 2,500 undeclared models deleted whole (6 versions each) and 500 declared models losing 3
#: versions each (2 of them in use): 3,000 models, 20,000 live objects.
WHOLE, PARTIAL = 2_500, 500


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, DriftReport]:
    return scale_plan_and_report(tmp_path_factory.mktemp("scale"), WHOLE, PARTIAL)


def test_the_3000_model_drift_page_groups_deletes_by_model_and_keeps_them_open(
    scale: tuple[Plan, DriftReport],
) -> None:
    plan, report = scale
    page = render_drift_html(report, plan)
    assert len(page) < 1_600_000  # ~470 bytes per model row: one reason per run, not per row
    parsed = parse(page)
    # What apply would delete is open; nothing else is (only drift categories with rows).
    opened = [attrs for tag, attrs in parsed.tags if tag == "details" and "open" in attrs]
    assert len(opened) == 1
    assert re.search(r"<details open><summary>[^<]*<span[^>]*></span>3998 unmanaged", page)
    # A group per model: a model's own row, or a header naming it over its versions.
    # (+ the 2 blocked versions' own groups, and the counts table)
    assert page.count("<tbody>") == WHOLE + PARTIAL + 2 + 1
    assert page.count('<tr class="model">') == PARTIAL
    assert page.count('<tr class="in-model">') == PARTIAL * 3 - 2
    # Age from the report's own time (2025-06-01T12:00), creator from the live record.
    assert (
        '<td class="age" title="2025-05-29T12:00:00+00:00">3 days</td><td>search-bot</td>' in page
    )
    # Names break only after "/" and "-".
    assert "<code>fabric-<wbr>prod/<wbr>search-<wbr>ranker-<wbr>0000</code>" in page
    assert "overflow-wrap: normal; word-break: keep-all;" in page
    assert "break-all" not in page


def test_the_3000_model_plan_page(scale: tuple[Plan, DriftReport]) -> None:
    plan, _ = scale
    page = render_plan_html(plan)
    assert len(page) < 1_600_000
    parse(page)
    assert "<h1>reconcile plan: 3998 to delete, 2 blocked, 0 drifted</h1>" in page
    assert re.search(r"<details open><summary>[^<]*<span[^>]*></span>3998 to delete", page)
    assert page.count('<tr class="model">') == PARTIAL
    assert "search-bot" in page and "3 days" in page


@pytest.mark.parametrize(
    ("created", "now", "expected"),
    [
        ("2025-05-29T12:00:00+00:00", "2025-06-01T12:00:00+00:00", "3 days"),
        ("2025-06-01T11:00:00Z", "2025-06-01T12:30:00+00:00", "1 hour"),
        ("2021-01-01T00:00:00+08:00", "2025-06-01T12:00:00+00:00", "4 years"),
        ("2025-06-01T08:00:00", "2025-06-01T12:00:00+00:00", "4 hours"),  # no offset: UTC
        ("yesterday", "2025-06-01T12:00:00+00:00", ""),
        ("2025-06-01T08:00:00Z", None, ""),  # a report without a time: no age, no clock
    ],
)
def test_age_is_counted_from_the_reports_time(created: str, now: str | None, expected: str) -> None:
    assert age(created, now) == expected


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_the_3000_model_page_renders_in_headless_chromium(
    scale: tuple[Plan, DriftReport], tmp_path: Path
) -> None:
    plan, report = scale
    page = tmp_path / "drift.html"
    page.write_text(render_drift_html(report, plan), encoding="utf-8")
    shot = tmp_path / "drift.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    # A page of tables and a chart, not a blank one: a blank 1280x2000 PNG is a few KB.
    assert 30_000 < len(data) < 5_000_000
