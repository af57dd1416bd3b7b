"""Previews in a real browser (headless Chromium, as tests/test_browser.py): thumbnails load in the file table and
the study's gallery under the pages' Content-Security-Policy; the image page steps through planes with JavaScript
turned off; the JSON-LD a crawler extracts from the pages carries ``thumbnailUrl``. Screenshots are kept in
``test-artifacts/screenshots/``."""

from __future__ import annotations

import json
import threading

import pytest
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from tests.servers.seaweedfs_server import free_ports
from tests.test_browser import browser, csp_violations, shot, until, wait_for  # noqa: F401 - fixtures shared
from tests.test_previews import IMAGES, deposit, images_of, run_jobs


@pytest.fixture(scope="module")
def site(make_module_catalog):
    """A live server with a released study of real images whose previews are made."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="preview-portal", base_url=base)
    files = {
        "nuclei/img2d.tif": (IMAGES / "tiff" / "stardist_img2d.tif").read_bytes(),
        "maps/EMD-3197.map": (IMAGES / "mrc" / "EMD-3197.map").read_bytes(),
        "phase/cell.png": (IMAGES / "png" / "skimage_cell.png").read_bytes(),
    }
    accession, _ = deposit(made.services, files)
    run_jobs(made.services)
    app = made.app()
    images = images_of(app.test_client(), accession)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": base, "accession": accession, "images": images}
    server.shutdown()


def loaded_images(driver) -> list[tuple[str, int]]:
    """The page's pictures (src, natural width), once every one has loaded or failed (lazy ones scrolled to)."""
    driver.execute_script("document.querySelectorAll('main img').forEach(i => i.scrollIntoView())")
    until(driver, lambda d: d.execute_script("return Array.from(document.querySelectorAll('main img')).every(i => i.complete)"))
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('main img')).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )


def test_thumbnails_load_in_the_file_table_and_the_gallery(site, browser, csp_violations):  # noqa: F811
    driver, accession = browser, site["accession"]
    driver.get(f"{site['base']}/studies/{accession}/files")
    wait_for(driver, By.CSS_SELECTOR, "tbody img")
    pictures = loaded_images(driver)
    assert len(pictures) == 3 and all(width > 0 for _, width in pictures), pictures
    assert csp_violations() == []
    shot(driver, "20-files-thumbnails")
    driver.get(f"{site['base']}/studies/{accession}")
    wait_for(driver, By.CSS_SELECTOR, "ul.gallery img")
    pictures = loaded_images(driver)
    assert 1 <= len(pictures) <= 4 and all(width > 0 for _, width in pictures), pictures
    assert csp_violations() == []
    shot(driver, "21-study-gallery")


def test_the_image_page_steps_through_planes_without_javascript(site, browser):  # noqa: F811
    driver = browser
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        driver.get(f"{site['base']}/studies/{site['accession']}/images/{site['images']['maps/EMD-3197.map']}")
        wait_for(driver, By.CSS_SELECTOR, "section.planes img")
        assert "z=10 of 20" in driver.page_source
        first = driver.find_element(By.CSS_SELECTOR, "section.planes img").get_attribute("src")
        for _ in range(2):
            driver.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
        wait_for(driver, By.CSS_SELECTOR, "section.planes img")
        assert "z=12 of 20" in driver.page_source
        picture = driver.find_element(By.CSS_SELECTOR, "section.planes img")
        assert picture.get_attribute("src") != first and "z=12" in picture.get_attribute("src")
        shot(driver, "22-image-page-no-js")
    finally:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    driver.get(driver.current_url)
    width = driver.execute_script("return document.querySelector('section.planes img').naturalWidth")
    assert width == 20  # the plane drawn by render.png


def test_the_json_ld_a_crawler_extracts_carries_thumbnail_urls(site, browser):  # noqa: F811
    driver, accession = browser, site["accession"]
    for path in (f"/studies/{accession}", f"/studies/{accession}/images/{site['images']['nuclei/img2d.tif']}"):
        driver.get(site["base"] + path)
        block = wait_for(driver, By.CSS_SELECTOR, 'script[type="application/ld+json"]').get_attribute("innerHTML")
        text = json.dumps(json.loads(block))
        assert '"thumbnailUrl"' in text and f"{site['base']}/studies/{accession}/images/" in text, path
