"""The demo's report in a real browser (Debian's chromium, driven by playwright): it loads
with no console or page error and every chart draws. CI installs chromium (scripts/tools);
without it this test fails, it does not skip."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from sluice.local.record import outcome, summary
from sluice.local.report import render_report
from tests.unit.local.test_report import small_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")


def test_report_loads_without_errors_and_draws_every_chart(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `scripts/tools chromium` installs it"
    record = small_record()
    record["outcome"] = outcome(record)
    report = tmp_path / "demo.html"
    report.write_text(render_report(record, summary(record)))

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report.as_uri())
            charts = page.locator("div.chart")
            assert charts.count() == 6
            page.wait_for_function(
                "() => [...document.querySelectorAll('div.chart')]"
                ".every(d => d.querySelector('.main-svg'))",
                timeout=60_000,
            )
            titles = page.eval_on_selector_all(
                "div.chart .gtitle", "els => els.map(e => e.textContent)"
            )
            assert "Drift per feature (test effect; X = drifted)" in titles
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert (tmp_path / "demo.png").stat().st_size > 10_000
