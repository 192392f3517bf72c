"""The dashboard in a real browser: headless Chromium driven by Selenium against the real service
while a client streams MNIST samples to it.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``).
Set ``HEBB_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to also write the screenshot there.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from model import make_config

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MODEL = "live"
BATCH = 64


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("headless Chromium is required: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,2000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


class Streamer(threading.Thread):
    """Posts labeled MNIST batches to the model until stopped (the client streaming samples)."""

    def __init__(self, url: str, images, labels, samples_body):
        super().__init__(daemon=True)
        self.url, self.images, self.labels, self.samples_body = url, images, labels, samples_body
        self.stop_event = threading.Event()
        self.posted = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=60.0) as client:
                start = 0
                while not self.stop_event.is_set() and start < len(self.images):
                    body = self.samples_body(self.images[start:start + BATCH], self.labels[start:start + BATCH])
                    response = client.post(f"/v1/models/{MODEL}/samples", json=body)
                    response.raise_for_status()
                    start += BATCH
                    self.posted = start
        except BaseException as exc:  # reported by the test
            self.error = exc


def wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def number(driver, element_id: str) -> int | None:
    text = driver.find_element("id", element_id).text.replace(",", "")
    return int(text) if re.fullmatch(r"\d+", text) else None


def test_dashboard_live_in_headless_chromium(browser, dashboard_server, mnist, helpers, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    url = dashboard_server.url
    created = httpx.post(f"{url}/v1/models", json={"name": MODEL, "preset": "mnist", "seed": 0}, timeout=60)
    assert created.status_code == 201, created.text
    images = mnist["train_images"][:20000].reshape(-1, 784)
    streamer = Streamer(url, images, mnist["train_labels"][:20000], helpers.samples_body)
    streamer.start()
    try:
        browser.get(f"{url}/#{MODEL}")
        assert browser.find_element("id", "model-select").get_attribute("value") == MODEL
        wait_for(lambda: browser.find_element("id", "connection").text == "live", 20, "the event stream")

        # the step and the accuracy curve advance while the client streams
        first_step = wait_for(lambda: number(browser, "stat-step"), 30, "a first step")
        first_points = int(browser.find_element("id", "accuracy-chart").get_attribute("data-points"))
        wait_for(lambda: (number(browser, "stat-step") or 0) > first_step, 30, "the step to advance")
        wait_for(lambda: int(browser.find_element("id", "accuracy-chart").get_attribute("data-points"))
                 >= max(first_points + 1, 3), 40, "the accuracy curve to grow")
        assert number(browser, "stat-labels") > 0
        assert browser.find_element("id", "stat-rolling").text.endswith("%")

        # the pictures load (the filters image is also a standalone endpoint)
        for image in ("filters-img", "units-img"):
            wait_for(lambda: browser.execute_script(
                "const i = document.getElementById(arguments[0]); return i.complete && i.naturalWidth > 0;", image),
                30, f"{image} to load")
        # layer health and confusion matrix are drawn
        n_layers = len(make_config("mnist").layers)
        wait_for(lambda: len(browser.find_elements("css selector", "#layers .layer canvas")) == n_layers, 20,
                 "layer health")

        # the page stays responsive while samples stream in: two animation frames come quickly
        frame_ms = browser.execute_async_script(
            "const done = arguments[arguments.length - 1]; const t = performance.now();"
            "requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t)));")
        assert frame_ms < 1000, f"two animation frames took {frame_ms:.0f} ms"

        # draw a stroke: a prediction (and its probabilities) appears as the person draws
        canvas = browser.find_element("id", "draw-canvas")
        (ActionChains(browser).move_to_element_with_offset(canvas, -10, -90).click_and_hold()
         .move_by_offset(5, 40).move_by_offset(5, 40).move_by_offset(5, 40).move_by_offset(5, 40).release().perform())
        label = wait_for(lambda: re.fullmatch(r"\d", browser.find_element("id", "prediction-label").text), 20,
                         "a prediction for the drawing")
        assert len(browser.find_elements("css selector", "#probabilities .row")) == 10
        preview_ink = browser.execute_script(
            "const d = document.getElementById('draw-preview').getContext('2d').getImageData(0, 0, 28, 28).data;"
            "let ink = 0; for (let i = 0; i < d.length; i += 4) ink += d[i] > 0; return ink;")
        assert 20 < preview_ink < 400, f"the 28x28 preview has {preview_ink} inked pixels"
        # MNIST-like: the ink fits a 20x20 box (longer side 20) and its centre of mass is the centre
        cx, cy, width, height, peak = browser.execute_script(
            "const p = draw.pixels; let m = 0, sx = 0, sy = 0, x0 = 28, x1 = -1, y0 = 28, y1 = -1;"
            "for (let i = 0; i < 784; i++) { const v = p[i]; if (!v) continue; const x = i % 28, y = (i - x) / 28;"
            "  m += v; sx += v * x; sy += v * y;"
            "  x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }"
            "return [sx / m, sy / m, x1 - x0 + 1, y1 - y0 + 1, Math.max(...p)];")
        assert abs(cx - 13.5) <= 1.0 and abs(cy - 13.5) <= 1.0, (cx, cy)
        assert 19 <= height <= 20 and width < height and peak == 255, (width, height, peak)
        assert label

        # send the drawing as feedback with the right label (a vertical stroke: a one)
        from selenium.webdriver.support.ui import Select

        Select(browser.find_element("id", "feedback-label")).select_by_value("1")
        browser.find_element("id", "feedback-send").click()
        status = wait_for(lambda: re.search(r"learned as 1 ", browser.find_element("id", "feedback-status").text),
                          30, "the feedback to be learned")
        assert status
        assert streamer.error is None, streamer.error
        assert streamer.posted > 0

        # the whole page in one picture: a window as tall as the page, scrolled to the top
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1400, height + 140)
        browser.execute_script("window.scrollTo(0, 0)")
        time.sleep(1.5)   # let the next snapshot render at the new size
        shot = tmp_path / "dashboard.png"
        assert browser.get_screenshot_as_file(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("HEBB_DASHBOARD_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["HEBB_DASHBOARD_SCREENSHOT"])
    finally:
        streamer.stop_event.set()
        streamer.join(60)


def test_dashboard_with_api_keys_uses_the_key_field(browser, tmp_path, mnist, helpers):
    from selenium.webdriver.common.keys import Keys

    server = helpers.Server(tmp_path, {"HEBB_STORE": "memory://",
                                       "HEBB_API_KEYS": f"{helpers.WRITE_KEY}:write,{helpers.READ_KEY}:read"})
    try:
        write = {"Authorization": f"Bearer {helpers.WRITE_KEY}"}
        with httpx.Client(base_url=server.url, headers=write, timeout=60) as client:
            assert client.post("/v1/models", json={"name": "keyed", "preset": "mnist-shallow"}).status_code == 201
            X, y = mnist["train_images"][:200].reshape(-1, 784), mnist["train_labels"][:200]
            assert client.post("/v1/models/keyed/samples", json=helpers.samples_body(X, y)).status_code == 200
        browser.get(server.url + "/")
        wait_for(lambda: browser.find_element("id", "connection").text == "API key needed", 20, "the key prompt")
        browser.find_element("id", "api-key").send_keys(helpers.READ_KEY, Keys.TAB)      # change event
        wait_for(lambda: browser.find_element("id", "connection").text == "live", 20, "the stream with the key")
        wait_for(lambda: number(browser, "stat-step") == 200, 20, "the model's step")
        wait_for(lambda: browser.execute_script(
            "const i = document.getElementById('filters-img'); return i.complete && i.naturalWidth > 0;"),
            30, "the filters image fetched with the key")
        assert browser.execute_script("return localStorage.getItem('hebb.apiKey')") == helpers.READ_KEY
        # the key never goes into a URL
        urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert urls and not any(helpers.READ_KEY in url for url in urls)
    finally:
        server.stop()
