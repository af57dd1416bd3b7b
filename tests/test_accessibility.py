"""Accessibility in a real browser (headless Chromium, as tests/test_browser.py): every page type passes axe-core with
no serious or critical violation, and a keyboard alone goes from a search to a downloaded file.

axe-core is vendored in ``tests/vendor/axe-core/`` (MPL-2.0, see its ``SOURCES.txt``) and injected through the
DevTools protocol, so nothing is fetched while the tests run and the pages' Content-Security-Policy stays as served.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from werkzeug.serving import make_server

from tests.catalog_helpers import stage_sample
from tests.servers.seaweedfs_server import free_ports
from tests.test_file_table_page import WIDE_COLUMNS, WIDE_FILES, deposit_wide
from tests.test_browser import assert_downloaded, browser, shot, until, wait_for  # noqa: F401 - fixtures shared
from tests.test_previews import IMAGES, deposit, images_of, run_jobs

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
#: axe's impact levels that fail a page
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def site(make_module_catalog):
    """A live server with a released deposit of listed files and one of real images with their previews."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="a11y-portal", base_url=base)
    services = made.services
    _, owner = made.token("jane")
    accession = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    files = {
        "nuclei/img2d.tif": (IMAGES / "tiff" / "stardist_img2d.tif").read_bytes(),
        "phase/cell.png": (IMAGES / "png" / "skimage_cell.png").read_bytes(),
    }
    with_images, _ = deposit(services, files)
    wide = deposit_wide(services, owner)
    run_jobs(services)
    app = made.app()
    client = app.test_client()
    images = images_of(client, with_images)
    record = client.get(f"/studies/{accession}", headers={"Accept": "application/ld+json"}).get_data(as_text=True)
    component = re.search(rf'"({re.escape(base)}/studies/{accession}/[^"#]*component[^"#]*)"', record)
    assert component, record[:2000]
    assert client.get(component.group(1)[len(base) :], headers={"Accept": "text/html"}).status_code == 200
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "base": base,
        "accession": accession,
        "with_images": with_images,
        "images": images,
        "wide": wide,
        "component": component.group(1)[len(base) :],
    }
    server.shutdown()


def axe_violations(driver) -> list[dict]:
    """axe-core's serious and critical violations of the page loaded (WCAG 2.x A and AA rules and best practices)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));"
    )
    assert isinstance(result, list), result
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["html"][:200] for n in v["nodes"][:5]]}
        for v in result
        if v["impact"] in BLOCKING
    ]


def page_types(site) -> dict[str, str]:
    accession, with_images = site["accession"], site["with_images"]
    image = site["images"]["nuclei/img2d.tif"]
    return {
        "home": "/",
        "search": "/search?q=HeLa",
        "study": f"/studies/{accession}",
        "component": site["component"],
        "image": f"/studies/{with_images}/images/{image}",
        "files": f"/studies/{accession}/files",
        "files-with-thumbnails": f"/studies/{with_images}/files",
        "files-wide-filtered": f"/studies/{site['wide']}/files?columns=path,Notes,Stain&filter[Replicate]=1",
        "studies": "/studies",
        "stats": "/stats",
        "sparql": "/sparql",
        "sparql-results": "/sparql?query=SELECT%20%3Fs%20WHERE%20%7B%20%3Fs%20%3Fp%20%3Fo%20%7D%20LIMIT%205&format=html",
        "deposit": "/deposit",
        "my-deposits": "/my-deposits",
        "error": "/studies/S-BIAD999999",
    }


def test_every_page_type_passes_axe(site, browser):  # noqa: F811
    driver, found = browser, {}
    for name, path in page_types(site).items():
        driver.get(site["base"] + path)
        wait_for(driver, By.TAG_NAME, "main")
        problems = axe_violations(driver)
        if problems:
            found[name] = problems
    assert found == {}


def focus_by_tab(driver, matches, most: int = 200):
    """Press Tab until the focused element satisfies ``matches``; it must show that it has the focus."""
    for _ in range(most):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        element = driver.switch_to.active_element
        if matches(element):
            assert element.value_of_css_property("outline-style") != "none", element.get_attribute("outerHTML")
            return element
    raise AssertionError(f"{most} presses of Tab never reached the element on {driver.current_url}")


def test_a_keyboard_alone_goes_from_search_to_a_downloaded_file(site, browser):  # noqa: F811
    driver, accession = browser, site["accession"]
    driver.get(site["base"] + "/")
    box = focus_by_tab(driver, lambda e: e.get_attribute("id") == "q")
    box.send_keys("HeLa", Keys.ENTER)
    until(driver, lambda d: "/search" in d.current_url)
    link = focus_by_tab(driver, lambda e: e.tag_name == "a" and (e.get_attribute("href") or "").endswith(f"/studies/{accession}"))
    link.send_keys(Keys.ENTER)
    wait_for(driver, By.ID, "citation")
    focus_by_tab(driver, lambda e: e.tag_name == "a" and e.text.startswith("Browse the")).send_keys(Keys.ENTER)
    field = wait_for(driver, By.NAME, "filter[Compound]")
    field = focus_by_tab(driver, lambda e: e.get_attribute("name") == "filter[Compound]")
    field.send_keys("taxol", Keys.ENTER)
    until(driver, lambda d: "filter%5BCompound%5D=taxol" in d.current_url)
    assert len(driver.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    shot(driver, "30-keyboard-files-filtered")
    download = focus_by_tab(driver, lambda e: e.tag_name == "a" and e.text == "download")
    path = download.get_attribute("aria-label").removeprefix("download ")
    download.send_keys(Keys.ENTER)
    assert_downloaded(driver, path)


def overflow(driver) -> dict:
    """How far the page and the file table reach past the window's width (0: nothing is cut off)."""
    return driver.execute_script(
        "const width = document.documentElement.clientWidth;"
        "const cells = Array.from(document.querySelectorAll('table.files th, table.files td'));"
        "return {page: document.documentElement.scrollWidth - width,"
        " cells: Math.max(0, ...cells.map(c => c.getBoundingClientRect().right - width)),"
        " headers: cells.filter(c => c.tagName == 'TH').length};"
    )


def test_the_file_table_fits_a_1280_pixel_screen(site, browser):  # noqa: F811
    driver = browser
    assert driver.execute_script("return window.innerWidth") == 1280
    driver.get(f"{site['base']}/studies/{site['wide']}/files")
    wait_for(driver, By.CSS_SELECTOR, "table.files")
    assert overflow(driver) == {"page": 0, "cells": 0, "headers": 8}
    # every column chosen with the keyboard, without script
    summary = focus_by_tab(driver, lambda e: e.tag_name == "summary")
    summary.send_keys(Keys.ENTER)
    for name in WIDE_COLUMNS:
        box = driver.find_element(By.CSS_SELECTOR, f'input[name="columns"][value="{name}"]')
        if not box.is_selected():
            focus_by_tab(driver, lambda e, box=box: e == box).send_keys(Keys.SPACE)
    focus_by_tab(driver, lambda e: e.tag_name == "button" and e.text == "Show").send_keys(Keys.ENTER)
    until(driver, lambda d: "columns=Replicate" in d.current_url)
    assert overflow(driver) == {"page": 0, "cells": 0, "headers": 3 + len(WIDE_COLUMNS) + 1}
    assert len(driver.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(WIDE_FILES)
    shot(driver, "31-files-every-column-1280")
    assert axe_violations(driver) == []


def test_search_results_show_what_a_scientist_scans_for(site, browser):  # noqa: F811
    driver = browser
    driver.get(site["base"] + "/search?q=compounds")
    hits = wait_for(driver, By.CSS_SELECTOR, "ol.hits").find_elements(By.CSS_SELECTOR, "ol.hits > li")
    assert len(hits) == 3
    for hit in hits:
        assert hit.find_element(By.CSS_SELECTOR, "h2 a").text == "Nuclear morphology screen of HeLa cells"
        terms = {dt.text: dd.text for dt, dd in zip(hit.find_elements(By.TAG_NAME, "dt"), hit.find_elements(By.TAG_NAME, "dd"))}
        assert terms["Organism"] == "Homo sapiens" and terms["Imaging"] and terms["Released"][:2] == "20", terms
        assert hit.find_element(By.CSS_SELECTOR, "p mark").text.lower().startswith("compound")
    with_images = [h for h in hits if site["with_images"] in h.text]
    assert with_images and with_images[0].find_element(By.TAG_NAME, "img").get_attribute("src").endswith("size=128")
    shot(driver, "32-search-results")
