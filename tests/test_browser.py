"""The portal in a real browser: Debian's headless Chromium driven by Selenium against a live server.

search → study page → file table filtered → a file downloaded; an example SPARQL query run from the query page;
a deposit from the form (a wrong ORCID shown next to its field, then fixed) to its accession. Screenshots of
every step are kept in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from loaders.harvest import Harvester
from tests.catalog_helpers import file_bytes, stage_sample
from tests.servers.seaweedfs_server import free_ports

TESTS = Path(__file__).parent
SHOTS = TESTS.parent / "test-artifacts" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def site(make_module_catalog):
    """A live server on a free port with a released deposit (files held) and harvested studies."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="portal", base_url=base)
    services, tmp = made.services, made.folder
    token, owner = made.token("jane")
    accession = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    Harvester(services.archive).run("pagetab", [str(TESTS / "data" / "harvest" / "biostudies" / "S-BIAD1492.json")])
    Harvester(services.archive).run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")])
    server = make_server("127.0.0.1", port, made.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": base, "token": token, "accession": accession, "tmp": tmp}
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("Debian's chromium and chromium-driver are needed (.ci/run installs them)")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def assert_downloaded(driver, path: str) -> None:
    """The sample file ``path`` arrives in the browser's download folder (within 20 s), byte for byte."""
    target = driver.downloads / path.rsplit("/", 1)[-1]
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), list(driver.downloads.iterdir())
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(file_bytes(path)).hexdigest()


def wait_for(driver, by, value, timeout=20):
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((by, value)))


#: what a check may meet while the page it looks at is being replaced by the next one
PAGE_CHANGING = (StaleElementReferenceException, NoSuchElementException, IndexError)


def until(driver, check, timeout=20):
    """Wait for ``check(driver)`` to hold, retrying while the page is mid-navigation (an element of the old page
    goes stale, or one of the new page is not there yet)."""
    return WebDriverWait(driver, timeout, ignored_exceptions=PAGE_CHANGING).until(check)


def test_search_study_filter_and_download(site, browser):
    driver, accession = browser, site["accession"]
    driver.get(site["base"] + "/")
    shot(driver, "01-home")
    box = driver.find_element(By.ID, "q")
    box.send_keys("HeLa")
    box.submit()
    wait_for(driver, By.PARTIAL_LINK_TEXT, accession)
    assert "<mark>" in driver.page_source or driver.find_elements(By.TAG_NAME, "mark")
    shot(driver, "02-search")
    driver.find_element(By.PARTIAL_LINK_TEXT, accession).click()
    wait_for(driver, By.ID, "citation")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Nuclear morphology screen of HeLa cells"
    assert "Jane Doe" in driver.page_source and "ORCID" in driver.page_source
    jsonld = driver.find_element(By.CSS_SELECTOR, 'script[type="application/ld+json"]').get_attribute("innerHTML")
    assert '"Dataset"' in jsonld
    shot(driver, "03-study")
    driver.find_element(By.PARTIAL_LINK_TEXT, "Browse the").click()
    field = wait_for(driver, By.NAME, "filter[Compound]")
    assert "6 files" in driver.page_source
    field.send_keys("taxol")
    field.submit()
    until(driver, lambda d: "2 files" in d.page_source)
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 2 and all("taxol" in row.text for row in rows)
    shot(driver, "04-files-filtered")
    for header, first in (("Concentration", "2"), ("Concentration", "20")):  # ascending, then descending
        driver.find_element(By.PARTIAL_LINK_TEXT, header).click()
        until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")[6].text == first)
        assert "2 files" in driver.page_source  # the filter stays while sorting
    shot(driver, "04b-files-sorted")
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    path = rows[0].find_elements(By.TAG_NAME, "td")[0].text
    rows[0].find_element(By.LINK_TEXT, "download").click()
    assert_downloaded(driver, path)


def test_run_an_example_sparql_query(site, browser):
    driver = browser
    driver.get(site["base"] + "/sparql")
    wait_for(driver, By.ID, "query")
    shot(driver, "05-sparql")
    driver.find_elements(By.CSS_SELECTOR, "a.run")[0].click()
    table = wait_for(driver, By.ID, "results")
    cells = [td.text for td in table.find_elements(By.TAG_NAME, "td")]
    assert "Homo sapiens" in cells
    shot(driver, "06-sparql-results")
    driver.get(site["base"] + "/sparql")
    area = wait_for(driver, By.ID, "query")
    area.clear()
    area.send_keys("SELECT (COUNT(DISTINCT ?g) AS ?studies) WHERE { GRAPH ?g { ?g a <https://w3id.org/rembi/Study> } }")
    driver.find_element(By.ID, "run-query").click()
    table = wait_for(driver, By.ID, "results")
    assert table.find_elements(By.TAG_NAME, "td")[0].text == "3"


def test_deposit_from_form_to_accession(site, browser, tmp_path):
    driver = browser
    names = ["cell1.tif", "cell2.tif"]
    for name in names:
        (tmp_path / name).write_bytes(hashlib.sha256(name.encode()).digest() * 64)
    listing = tmp_path / "files.tsv"
    listing.write_text("path\tTreatment\n" + "".join(f"{n}\tcontrol\n" for n in names))

    def fill(orcid: str) -> None:
        driver.get(site["base"] + "/deposit")
        wait_for(driver, By.ID, "token").send_keys(site["token"])
        driver.find_element(By.ID, "title").send_keys("Cells imaged from the form")
        driver.find_element(By.ID, "description").send_keys("Two confocal images deposited through the web form.")
        driver.find_element(By.ID, "author_name").send_keys("Ada Form")
        driver.find_element(By.ID, "author_orcid").send_keys(orcid)
        driver.find_element(By.ID, "organism").send_keys("Homo sapiens")
        driver.find_element(By.ID, "imaging_method").send_keys("confocal microscopy")
        driver.find_element(By.ID, "file_list").send_keys(str(listing))
        driver.find_element(By.ID, "files").send_keys("\n".join(str(tmp_path / n) for n in names))

    fill("https://orcid.org/0000-0002-1825-009")  # one digit short
    shot(driver, "07-deposit-form")
    driver.find_element(By.ID, "submit").click()
    message = wait_for(driver, By.ID, "author_orcid-error")
    assert "not an ORCID" in message.text
    assert driver.find_element(By.ID, "title").get_attribute("value") == "Cells imaged from the form"  # kept
    shot(driver, "08-deposit-error-next-to-field")
    fill("https://orcid.org/0000-0002-1825-0097")
    driver.find_element(By.ID, "submit").click()
    accession = wait_for(driver, By.ID, "accession").text
    assert accession.startswith("S-BIAD")
    shot(driver, "09-deposit-accession")
    driver.get(f"{site['base']}/studies/{accession}")
    wait_for(driver, By.ID, "citation")
    assert "Ada Form" in driver.page_source
    driver.get(f"{site['base']}/my-deposits")
    wait_for(driver, By.ID, "token").send_keys(site["token"])
    driver.find_element(By.CSS_SELECTOR, "main form button").click()
    until(driver, lambda d: accession in d.page_source)
    assert "released" in driver.page_source
    shot(driver, "10-my-deposits")


def test_pages_work_without_javascript_and_keyboard(site, tmp_path_factory):
    """No script is needed: every page is served complete; forms label every input."""
    import urllib.request

    for path in (
        "/",
        "/search?q=HeLa",
        f"/studies/{site['accession']}",
        f"/studies/{site['accession']}/files",
        "/sparql",
        "/deposit",
        "/my-deposits",
        "/stats",
    ):
        request = urllib.request.Request(site["base"] + path, headers={"Accept": "text/html"})
        html = urllib.request.urlopen(request, timeout=10).read().decode()
        assert "<script src" not in html and "http://cdn" not in html and "https://cdn" not in html
        for input_id in __import__("re").findall(r'<(?:input|textarea|select)[^>]* id="([^"]+)"', html):
            assert f'for="{input_id}"' in html, (path, input_id)


#: records every Content-Security-Policy violation of a page (DevTools adds it before the page's own code runs)
CSP_WATCH = """window.__cspWatch = true; window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));"""


@pytest.fixture
def csp_violations(browser):
    """A function returning the CSP violations of the page loaded last (the watcher is removed afterwards)."""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})

    def violations() -> list[str]:
        time.sleep(0.3)  # violation events are dispatched asynchronously
        assert browser.execute_script("return window.__cspWatch === true"), "the CSP watcher did not run"
        return browser.execute_script("return window.__cspViolations")

    yield violations
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})


def test_pages_render_under_their_content_security_policy(site, browser, csp_violations):
    """The policy blocks nothing the pages use: the inline stylesheet (by hash), the SVG chart, the JSON-LD data
    block, the forms; and it blocks what a page does not use (a positive control: an image from elsewhere)."""
    driver, accession = browser, site["accession"]
    for path in (
        "/",
        "/studies",
        "/search?q=HeLa",
        f"/studies/{accession}",
        f"/studies/{accession}/files",
        "/sparql",
        "/deposit",
        "/my-deposits",
        "/stats",
    ):
        driver.get(site["base"] + path)
        wait_for(driver, By.TAG_NAME, "main")
        header = driver.find_element(By.TAG_NAME, "header")
        assert header.value_of_css_property("background-color") == "rgba(11, 79, 108, 1)", path  # the stylesheet applies
        assert csp_violations() == [], path
    driver.get(site["base"] + "/stats")  # the growth chart lives on the statistics page (the home page is a way in)
    chart = wait_for(driver, By.CSS_SELECTOR, "figure svg polyline")
    assert chart.size["width"] > 0
    shot(driver, "11-stats-under-csp")
    driver.execute_script(
        "var i = document.createElement('img'); i.src = 'http://192.0.2.1/x.png'; document.body.appendChild(i);"
    )
    assert any(v.startswith("img-src http://192.0.2.1") for v in csp_violations())


def test_a_javascript_iri_in_a_result_is_not_a_link(site, browser, csp_violations):
    from urllib.parse import quote

    driver = browser
    query = "SELECT ?x WHERE { BIND(IRI(\"javascript:document.title='pwned'\") AS ?x) }"
    driver.get(f"{site['base']}/sparql?query={quote(query)}&format=html")
    cell = wait_for(driver, By.CSS_SELECTOR, "#results td a")
    assert cell.get_attribute("href") is None and "javascript:" in cell.text
    cell.click()
    assert driver.title != "pwned" and csp_violations() == []


def test_swagger_ui_works_under_its_policy(site, browser, csp_violations):
    driver = browser
    driver.get(site["base"] + "/docs")
    operation = wait_for(driver, By.CSS_SELECTOR, ".opblock-summary", timeout=30)  # the bundle ran and read /openapi.json
    assert len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) > 10
    operation.click()
    wait_for(driver, By.CSS_SELECTOR, ".try-out__btn")
    shot(driver, "12-docs-under-csp")
    assert csp_violations() == []
