"""End to end in a real headless browser: ``streamlit run`` on a loopback port against a small
world built by the real pipeline; Debian's chromium driven by selenium through the system
chromedriver (nothing downloads a browser). Screenshots land in tests/output/ (git-ignored)."""

from __future__ import annotations

import pytest

from tests.fixtures.browser import serve_streamlit
from tests.fixtures.dashboard import OUTPUT_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def dashboard_url(dashboard_world, tmp_path):
    with serve_streamlit(dashboard_world.env, tmp_path / "streamlit.log") as url:
        yield url


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
