"""``GET /portfolios/<name>/report`` in a real browser: headless Chromium renders the page the live server sends.

The page is self-contained (inline CSS, charts as ``data:`` PNGs), so the test fetches it with a viewer's token,
saves it, and has Chromium (Debian's ``chromium``; ``make setup-test`` installs it) dump its DOM and take a
screenshot of the file: no credentials need to reach the browser, and the browser needs no network.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .conftest import LiveApi

WINDOW = (1280, 2400)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _get(api: LiveApi, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(f"{api.url}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make setup-test` installs it (apt-get install chromium).")
        pytest.skip("chromium is not installed: run `make setup-test` (as root) or `apt-get install chromium`.")
    return found


def _run_chromium(binary: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--hide-scrollbars", *arguments,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _image(dom: str, alt: str) -> bytes:
    """The PNG behind the page's ``<img alt=...>`` (its data: URI decoded)."""
    found = re.search(rf'<img alt="{alt}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert found is not None, f"no {alt} image in the rendered page"
    return base64.b64decode(found.group(1))


def test_the_report_renders_in_chromium_with_its_figures(module_api: LiveApi, tmp_path: Path) -> None:
    # Given the live server after a committed run, its latest result, and the report it serves a viewer
    chromium = _chromium()
    viewer = module_api.headers("viewer")
    status, _, body = _get(module_api, "/portfolios/default/latest", viewer)
    assert status == 200
    latest: dict[str, Any] = json.loads(body)["latest"]
    status, content_type, page = _get(module_api, "/portfolios/default/report", viewer)
    assert status == 200, page[:500]
    assert content_type == "text/html; charset=utf-8"
    text = page.decode("utf-8")
    # self-contained: nothing for the browser to fetch
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
    assert "<link" not in text and "<script" not in text
    html_file = tmp_path / "report.html"
    html_file.write_text(text, encoding="utf-8")
    profile, screenshot = tmp_path / "chromium-profile", tmp_path / "report.png"

    # When Chromium renders it: its DOM, and a screenshot of the window
    dom = _run_chromium(chromium, profile, "--dump-dom", html_file.as_uri()).stdout
    _run_chromium(
        chromium, profile, f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={screenshot}", html_file.as_uri()
    )

    # Then the DOM holds the regime, every weight row, the Monte Carlo VaR and CVaR, the stress and the limits
    regime = latest["regime"]
    assert f"<td>{regime['regime']}</td>" in dom and f"<td>{regime['model_version']}</td>" in dom
    held = json.loads(_get(module_api, "/portfolios/default/holdings", viewer)[2])["holdings"]["weights"]
    for asset, weight in latest["target_weights"].items():
        target, kept = (f"{round(w, 8) + 0.0:.2%}" for w in (weight, held[asset]))
        assert f"<tr><td>{asset}</td><td>{target}</td><td>{kept}</td>" in dom, asset
    monte_carlo = latest["risk"]["monte_carlo"]
    for key in ("var_0.95", "cvar_0.95", "var_0.99", "cvar_0.99"):
        assert f"<td>{monte_carlo[key]:.2%}</td>" in dom, key
    assert f"<td>{latest['stress']['worst_scenario']}</td>" in dom
    for breach in latest["breaches"]:
        assert f"<td>{breach['limit']}</td>" in dom
    # and every chart is a real PNG: the fan chart over the horizon, the weights, the stress scenarios
    for alt in ("fan chart", "weights chart", "stress chart"):
        png = _image(dom, alt)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 20_000, (alt, len(png))
        with Image.open(io.BytesIO(png)) as chart:
            assert chart.width >= 800 and chart.height >= 300
    # and the screenshot is the window, drawn, not blank
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(screenshot) as shot:
        assert shot.size == WINDOW
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 500
        white = max(colours)[0] / (WINDOW[0] * WINDOW[1])
        assert white < 0.9, f"{white:.0%} of the screenshot is one colour"


def test_the_report_needs_credentials(module_api: LiveApi) -> None:
    # Given no credentials, When the report is asked for, Then 401 with the error body
    status, _, body = _get(module_api, "/portfolios/default/report")
    assert status == 401
    assert json.loads(body)["error"] == "UnauthorizedError"


def test_the_report_of_an_unknown_or_never_run_portfolio_is_404(module_api: LiveApi) -> None:
    # Given a viewer, a portfolio that does not exist, and one saved by a manager but never run
    viewer = module_api.headers("viewer")
    request = urllib.request.Request(
        f"{module_api.url}/portfolios",
        data=json.dumps(
            {"spec": {"name": "never-run", "universe": ["AAPL", "JPM"], "method": "min_variance"}}
        ).encode(),
        headers={**module_api.headers("manager"), "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as created:
        assert created.status == 201

    # When their reports are asked for
    unknown = _get(module_api, "/portfolios/nope/report", viewer)
    never_run = _get(module_api, "/portfolios/never-run/report", viewer)

    # Then both are 404 RecordNotFoundError, the second saying there is no committed run yet
    for status, _, body in (unknown, never_run):
        assert status == 404
        assert json.loads(body)["error"] == "RecordNotFoundError"
    assert "no committed run yet" in json.loads(never_run[2])["message"]
