"""A newcomer's first path through the demo catalog, in Debian's headless Chromium: home → search → study → file table
filtered → download of a real image file (bytes checked against the bundled source file) → an example SPARQL query.
A screenshot of every page type lands in ``test-artifacts/screenshots/newcomer-*.png``."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from api.demo_loader import DEMO_OWNER, DEPOSIT, deposit_title
from tests.servers.seaweedfs_server import free_ports
from tests.test_browser import SHOTS, browser, until, wait_for  # noqa: F401 - the Chromium fixture of the browser tests

#: the first 16 hex digits of the sha256 of ../shared/samples/images/tiff/stardist_img2d.tif (its SOURCES.txt)
NUCLEI_SHA256 = "f9ccc1571b92c861"


@pytest.fixture(scope="module")
def demo_site(make_module_catalog):
    """`bia serve --demo` in-process: the demo catalog served on a free port, with its job worker running."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="newcomer", demo=True, base_url=base)
    accession = made.services.archive.registry.studies(owner=DEMO_OWNER)[0].accession
    server = make_server("127.0.0.1", port, made.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": base, "accession": accession}
    server.shutdown()


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"newcomer-{name}.png"))


def test_a_newcomer_finds_a_study_filters_its_files_and_downloads_a_real_image(demo_site, browser):  # noqa: F811
    driver, accession = browser, demo_site["accession"]
    driver.get(demo_site["base"] + "/")
    shot(driver, "01-home")
    box = wait_for(driver, By.ID, "q")
    box.send_keys("nuclei")
    box.submit()
    wait_for(driver, By.PARTIAL_LINK_TEXT, accession)
    shot(driver, "02-search")
    driver.find_element(By.PARTIAL_LINK_TEXT, accession).click()
    wait_for(driver, By.ID, "citation")
    assert driver.find_element(By.TAG_NAME, "h1").text == deposit_title()
    shot(driver, "03-study")
    driver.find_element(By.PARTIAL_LINK_TEXT, "Browse the").click()
    field = wait_for(driver, By.NAME, "filter[channel]")
    assert "4 files" in driver.page_source
    shot(driver, "04-files")
    field.send_keys("nuclei")
    field.submit()
    until(driver, lambda d: "1 file</strong> of 4" in d.find_element(By.ID, "counts").get_attribute("innerHTML"))
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 1 and "nuclei/nuclei.tif" in rows[0].text and "DNA dye" in rows[0].text
    shot(driver, "05-files-filtered")
    rows[0].find_element(By.LINK_TEXT, "download").click()
    target = driver.downloads / "nuclei.tif"
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), list(driver.downloads.iterdir())
    body = target.read_bytes()
    assert body == (DEPOSIT / "files" / "nuclei" / "nuclei.tif").read_bytes()
    assert hashlib.sha256(body).hexdigest().startswith(NUCLEI_SHA256)
    driver.get(demo_site["base"] + "/sparql")
    wait_for(driver, By.ID, "query")
    shot(driver, "06-sparql")
    driver.find_elements(By.CSS_SELECTOR, "a.run")[0].click()
    table = wait_for(driver, By.ID, "results")
    assert table.find_elements(By.CSS_SELECTOR, "tbody tr")
    shot(driver, "07-sparql-results")


def test_the_other_page_types_of_the_demo(demo_site, browser):  # noqa: F811
    """A harvested study (its files at the source archive), the list of studies, the statistics, the API docs and a
    page that does not exist: each drawn and kept as a screenshot."""
    driver = browser
    driver.get(demo_site["base"] + "/studies/EMPIAR-10934")
    link = wait_for(driver, By.ID, "files-at-source")
    assert link.get_attribute("href") == "https://www.ebi.ac.uk/empiar/EMPIAR-10934" and "Browse the 0" not in driver.page_source
    shot(driver, "08-harvested-study")
    driver.get(demo_site["base"] + "/studies/S-BIAD1492/files")
    wait_for(driver, By.CSS_SELECTOR, "tbody tr")
    href = driver.find_elements(By.LINK_TEXT, "download")[0].get_attribute("href")
    assert href.startswith(demo_site["base"] + "/files/S-BIAD1492/")  # answers a redirect to BioStudies' file server
    shot(driver, "09-harvested-files")
    for name, path in (("10-studies", "/studies"), ("11-stats", "/stats"), ("12-not-found", "/studies/S-NOPE1")):
        driver.get(demo_site["base"] + path)
        wait_for(driver, By.TAG_NAME, "main" if name != "12-not-found" else "body")
        shot(driver, name)
    driver.get(demo_site["base"] + "/docs")
    wait_for(driver, By.CSS_SELECTOR, ".opblock-summary", timeout=30)
    shot(driver, "13-docs")
