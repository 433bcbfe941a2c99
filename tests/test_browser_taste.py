"""In a real headless browser (``streamlit run`` on loopback, a world built by the real pipeline, the map laid
out by ``soundmates map build``): give feedback on a match card and see it counted, open the taste map and
the 'Your taste' page. Screenshots under tests/output/."""

from __future__ import annotations

import pytest

from tests.fixtures.browser import serve_streamlit
from tests.fixtures.dashboard import OUTPUT_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _settled(driver) -> bool:
    from selenium.webdriver.common.by import By

    return not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget'], [data-testid='stSkeleton']")


@pytest.fixture
def mapped_url(dashboard_world, tmp_path):
    from soundmates.config import get_settings
    from soundmates.pipelines.taste_map import build_map

    build_map(get_settings(), progress=False)
    with serve_streamlit(dashboard_world.env, tmp_path / "streamlit.log") as url:
        yield url


def test_feedback_map_and_taste_page_in_a_browser(mapped_url, dashboard_world, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from soundmates.config import get_settings
    from soundmates.store.feedback import training_pairs

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    me = dashboard_world.stored_ids[0]
    wait = WebDriverWait(browser, 180)
    browser.get(mapped_url)
    field = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label='Your Spotify profile']")))
    field.send_keys(me)
    field.send_keys(Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[class*='st-key-match_card_10']")))
    wait.until(_settled)

    # Thumbs up on the first card, thumbs down on the second: both stored, the count shown on the cards.
    first = browser.find_element(By.CSS_SELECTOR, "[class*='st-key-match_card_1'] [class*='st-key-fb_up_'] button")
    first.click()
    wait.until(lambda d: "you rated 1 match (1 up)" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(_settled)
    browser.find_element(By.CSS_SELECTOR, "[class*='st-key-match_card_2'] [class*='st-key-fb_down_'] button").click()
    wait.until(lambda d: "you rated 2 matches (1 up)" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(_settled)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Your vote: fits" in body and "Your vote: does not fit" in body
    browser.save_screenshot(str(OUTPUT_DIR / "taste_feedback.png"))
    positives, negatives = training_pairs(get_settings())
    assert [u for u, _ in positives] == [me] and [u for u, _ in negatives] == [me]

    # The taste map: coloured by genre family with region labels, you and your matches on top.
    browser.find_element(By.XPATH, "//a[.//*[contains(text(), 'Taste map')]]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot")))
    wait.until(_settled)
    plot = browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot").text
    assert "you" in plot and "your matches" in plot
    assert "UMAP layout" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(OUTPUT_DIR / "taste_map.png"))

    # Your taste: prefilled with the last search; genres, artists, eras and the comparisons.
    browser.find_element(By.XPATH, "//a[.//*[contains(text(), 'Your taste')]]").click()
    button = wait.until(EC.element_to_be_clickable((By.XPATH, "//button[.//*[contains(text(), 'Show my taste')]]")))
    button.click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot")))
    wait.until(_settled)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Main genre family" in body and "More varied than" in body and "Your top genres" in body
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), body
    browser.save_screenshot(str(OUTPUT_DIR / "taste_profile.png"))
