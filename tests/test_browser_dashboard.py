"""End to end in a real headless browser: ``streamlit run`` on a loopback port against a small
world built by the real pipeline; Debian's chromium driven by selenium through the system
chromedriver (nothing downloads a browser). Screenshots land in tests/output/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.fixtures.dashboard import APP_PATH, OUTPUT_DIR, REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMEDRIVER = "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium: install it with `bash scripts/install_chromium.sh` (Debian chromium + chromium-driver)")


@pytest.fixture
def dashboard_url(dashboard_world, tmp_path):
    """``streamlit run streamlit_app/app.py`` in its own process group, stopped at teardown."""
    port = _free_port()
    env = {**os.environ, **dashboard_world.env, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP_PATH), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not come up on {url}:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own session: streamlit and nothing else
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not os.path.exists(CHROMEDRIVER):
        pytest.skip(f"no {CHROMEDRIVER}: install chromium-driver (bash scripts/install_chromium.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1800", "--lang=en-US"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _settled(driver) -> bool:
    """Streamlit finished this run: no 'running' widget and no placeholder skeletons."""
    from selenium.webdriver.common.by import By

    return not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget'], [data-testid='stSkeleton']")


def test_enter_a_profile_and_see_match_cards(dashboard_url, dashboard_world, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    me = dashboard_world.stored_ids[0]
    wait = WebDriverWait(browser, 180)
    browser.get(dashboard_url)
    field = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label='Your Spotify profile']")))
    field.send_keys(f"https://open.spotify.com/user/{me}")
    field.send_keys(Keys.ENTER)

    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[class*='st-key-match_card_10']")))
    wait.until(_settled)
    cards = browser.find_elements(By.CSS_SELECTOR, "[class*='st-key-match_card_']")
    assert len(cards) == 10
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href^='https://open.spotify.com/user/']")]
    assert len(links) == 10 and f"https://open.spotify.com/user/{me}" not in links
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Soundmates of" in body and "Match score" in body and "Closer than" in body
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), body
    browser.save_screenshot(str(OUTPUT_DIR / "dashboard_find.png"))

    # Why this match: the first card's toggle draws the plotly charts.
    cards[0].find_element(By.XPATH, ".//label[.//*[contains(text(), 'Why this match?')]]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[class*='st-key-match_card_1'] .js-plotly-plot")))
    wait.until(_settled)
    browser.save_screenshot(str(OUTPUT_DIR / "dashboard_why.png"))

    # Map page: you and your matches highlighted on the plotly projection.
    browser.find_element(By.XPATH, "//a[.//*[contains(text(), 'Taste map')]]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot")))
    wait.until(_settled)
    legend = browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot").text
    assert "you" in legend and "your matches" in legend
    browser.save_screenshot(str(OUTPUT_DIR / "dashboard_map.png"))
