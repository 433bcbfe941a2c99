"""In a real headless browser (``streamlit run`` on loopback, a world built by the real pipeline): search, press
'Blend with this person' on a match card, make the blend, see its tracks and download the M3U. Screenshot under
tests/output/."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.browser import serve_streamlit
from tests.fixtures.dashboard import OUTPUT_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _settled(driver) -> bool:
    from selenium.webdriver.common.by import By

    return not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget'], [data-testid='stSkeleton']")


def test_blend_from_a_match_card_in_a_browser(dashboard_world, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    me = dashboard_world.stored_ids[0]
    with serve_streamlit(dashboard_world.env, tmp_path / "streamlit.log") as url:
        wait = WebDriverWait(browser, 180)
        browser.get(url)
        field = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label='Your Spotify profile']")))
        field.send_keys(me)
        field.send_keys(Keys.ENTER)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[class*='st-key-match_card_1']")))
        wait.until(_settled)
        browser.find_element(By.CSS_SELECTOR, "[class*='st-key-match_card_1'] [class*='st-key-blend_with_'] button").click()
        make = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "[class*='st-key-blend_make'] button")))
        assert f"{me} (you)" in browser.find_element(By.TAG_NAME, "body").text
        make.click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[class*='st-key-blend_download_m3u'] button")))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot")))
        wait.until(_settled)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Blend of" in body and "Download JSON" in body and "Download CSV" in body
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), body
        browser.save_screenshot(str(OUTPUT_DIR / "blend.png"))
        browser.find_element(By.CSS_SELECTOR, "[class*='st-key-blend_download_m3u'] button").click()
        deadline = time.monotonic() + 30
        while not list(downloads.glob("*.m3u")) and time.monotonic() < deadline:
            time.sleep(0.5)
    got = list(downloads.glob("*.m3u"))
    assert got, f"no M3U downloaded: {list(downloads.iterdir())}"
    lines = got[0].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and [ln for ln in lines if ln.startswith("https://open.spotify.com/track/")]
