"""The file table for people (HTML) and its order for everyone: path order by default, sizes in human units with the
bytes in the title and the exports, counts of the filter against the whole table, a column chooser without script."""

from __future__ import annotations

import hashlib
import io
import re

import pytest

from tests.catalog_helpers import DATA

#: a file list listed out of path order, wider than a screen, with long unbroken values
WIDE_COLUMNS = ["Channel", "Stain", "Condition", "Label_of", "Microscope", "Objective", "Operator", "Notes", "Replicate"]
WIDE_FILES = {
    "zeta/well_B02_field_0001_channel_0002_z_0010.tif": 2_500,
    "alpha/well_A01_field_0001_channel_0001_z_0001.tif": 1_500_000,
    "mid/well_A02_field_0002_channel_0001_z_0005.tif": 999,
}


def deposit_wide(services, owner: str) -> str:
    """A released study whose file list has many long columns, listed out of path order."""
    deposits = services.deposits
    sub = deposits.create(owner)
    lines = ["\t".join(["path", *WIDE_COLUMNS])]
    for n, (path, size) in enumerate(WIDE_FILES.items()):
        content = hashlib.sha256(path.encode()).digest() * (size // 32) + b"x" * (size % 32)
        deposits.upload(sub, owner, path, io.BytesIO(content), size=size, md5=hashlib.md5(content).hexdigest())
        values = [f"DAPI{n}", "Hoechst-33342-nuclear-counterstain", f"treated_with_compound_{n}_for_24_hours_at_37C"]
        values += [f"labels/{path}", "Zeiss_LSM_980_Airyscan_2", "Plan-Apochromat_63x_1.40_Oil_DIC_M27"]
        values += ["jane.doe@example.org", "acquired_on_the_second_day_after_seeding_without_a_break_" * 2, str(n)]
        lines.append("\t".join([path, *values]))
    deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(("\n".join(lines) + "\n").encode()))
    deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes())
    return deposits.finalize(sub, owner)


@pytest.fixture(scope="module")
def wide(make_module_catalog):
    made = make_module_catalog(name="wide-table")
    _, owner = made.token("jane")
    accession = deposit_wide(made.services, owner)
    return {"client": made.app().test_client(), "accession": accession}


def page(wide, **query) -> str:
    response = wide["client"].get(f"/studies/{wide['accession']}/files", query_string=query, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def headers_of(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>|[▲▼]", "", h).strip() for h in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html)]


def test_the_default_order_is_by_path_in_pages_and_exports(wide):
    client, accession = wide["client"], wide["accession"]
    items = client.get(f"/studies/{accession}/files").get_json()["items"]
    assert [i["path"] for i in items] == sorted(WIDE_FILES)
    first = client.get(f"/studies/{accession}/files?limit=1").get_json()
    second = client.get(first["next"].split("://", 1)[1].split("/", 1)[1].join(["/", ""])).get_json()
    assert [first["items"][0]["path"], second["items"][0]["path"]] == sorted(WIDE_FILES)[:2]
    csv_text = client.get(f"/studies/{accession}/files.csv").get_data(as_text=True)
    assert [line.split(",")[0] for line in csv_text.strip().splitlines()[1:]] == sorted(WIDE_FILES)
    html = page(wide)
    assert html.index("alpha/") < html.index("mid/") < html.index("zeta/")
    assert 'aria-sort="ascending"' in html and "Sorted by path" in html


def test_sizes_read_in_human_units_with_the_bytes_in_the_title_and_the_export(wide):
    html = page(wide)
    assert re.search(r'title="1500000 bytes">1\.5 MB<', html) and re.search(r'title="2500 bytes">2\.5 kB<', html)
    assert re.search(r'title="1503499 bytes">1\.5 MB<', html)  # the total
    csv_text = wide["client"].get(f"/studies/{wide['accession']}/files.csv").get_data(as_text=True)
    assert ",1500000," in csv_text


def test_counts_of_the_filter_against_the_whole_table(wide):
    html = page(wide, **{"filter[Replicate]": "0"})
    counts = re.sub(r"<[^>]+>", "", re.search(r'<p id="counts">(.*?)</p>', html, re.DOTALL).group(1))
    assert "1 file of 3 match the filter (2.5 kB of 1.5 MB)" in counts, counts
    assert "3 files (1.5 MB)" in re.sub(r"<[^>]+>", "", page(wide))


def test_the_column_chooser_works_without_script(wide):
    assert headers_of(page(wide)) == ["path", "size", "format", *WIDE_COLUMNS[:4], "Download"]
    chosen = page(wide, columns=["path", "Notes"])
    assert headers_of(chosen) == ["path", "Notes", "Download"]
    assert headers_of(page(wide, columns="Stain,path")) == ["path", "Stain", "Download"]
    checked = re.findall(r'name="columns" value="([^"]+)" checked', chosen)
    assert checked == ["path", "Notes"]
    # a filter on a column not shown keeps its field, with its value
    kept = page(wide, columns="path", **{"filter[Operator]": "jane.doe@example.org"})
    assert re.search(r'name="filter\[Operator\]" value="jane.doe@example.org"', kept)
    answer = wide["client"].get(f"/studies/{wide['accession']}/files?columns=Colour", headers={"Accept": "text/html"})
    assert answer.status_code == 400 and "Colour" in answer.get_data(as_text=True)
    api = wide["client"].get(f"/studies/{wide['accession']}/files?columns=Colour")
    assert api.status_code == 400 and api.get_json()["code"]


def test_every_field_of_the_form_has_its_label_in_order(wide):
    html = page(wide, columns="path")
    ids = re.findall(r'<input type="(?:text|checkbox)" id="([^"]+)"', html)
    assert len(ids) == 1 + len(WIDE_COLUMNS) + 4  # a filter field, a checkbox for every column (size, format, type)
    for input_id in ids:
        assert re.search(rf'<label for="{input_id}">', html), input_id
    assert html.index('id="filter-1"') < html.index("Apply") < html.index('id="column-1"') < html.index("<table")
