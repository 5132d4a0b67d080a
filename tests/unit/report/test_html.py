"""The HTML report: self-contained, escaped, robust to deleted sources; and its CLI."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.unit.query.builders import (
    CATALOG,
    CRAFTED_KEY,
    NIGHT_2,
    SCORES_2,
    TABLE,
    Row,
    commit_run,
    results_catalog,
)
from tests.unit.report.helpers import DELETED_IMAGE, report_table
from vip2clip.cli.main import main
from vip2clip.report import build_report
from vip2clip.report.html import CONTENT_SECURITY_POLICY

SECRET = "do-not-leak-0123"


class _Page(HTMLParser):
    """Tags, attributes and text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> _Page:
    root = tmp_path_factory.mktemp("report-html")
    with results_catalog(root) as results:
        report_table(results, root)
        _, html = build_report(results, NIGHT_2[0], top=5)
    return _Page(html)


def test_nothing_executes_or_loads(page: _Page) -> None:
    names = {name for name, _ in page.tags}
    assert not names & {"script", "iframe", "object", "embed", "link", "base", "form"}
    for _, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")]  # no event handlers
        assert all(attrs.get(a) is None for a in ("href", "action", "srcset"))
    assert all((img["src"] or "").startswith("data:image/") for img in page.all("img"))
    csp = [m for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0]["content"] == CONTENT_SECURITY_POLICY


def test_crafted_key_and_details_are_shown_as_text(page: _Page) -> None:
    text = "".join(page.text)
    assert CRAFTED_KEY in text  # visible, literally, as text
    assert "<b>x</b>" in text  # an error detail with markup stays text
    assert len(page.all("b")) == len(SCORES_2)  # only the report's own rank labels are bold


def test_gallery_and_deleted_source(page: _Page) -> None:
    images = [img["alt"] for img in page.all("img")]
    assert images.count("anomaly map") == len(SCORES_2)
    assert images.count("overlay") == len(SCORES_2) - 1  # the deleted one has its mask only
    text = "".join(page.text)
    assert f"img-{DELETED_IMAGE}.png does not exist" in text
    assert "source image not shown" in text


def test_histogram_and_metadata(page: _Page) -> None:
    text = "".join(page.text)
    for fragment in (NIGHT_2[0], NIGHT_2[1], "object_missing", "not_an_image", "Errors (2)"):
        assert fragment in text
    for fragment in (TABLE, "model-a", "complete", "vip2clip.run-complete", "added-records"):
        assert fragment in text  # the run's state and its snapshot summary
    assert page.all("svg") and len(page.all("rect")) == 20


def test_no_credentials_in_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    summary = {"vip2clip.token": SECRET, "vip2clip.source": f"s3://user:{SECRET}@bucket/a"}
    with results_catalog(tmp_path) as results:
        commit_run(results, "r1", "2026-11-25", [Row("a.png", 0.7)], summary=summary)
        moment = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
        _, html = build_report(results, generated_at=moment)
    assert SECRET not in html


def test_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "report.html"
    with results_catalog(tmp_path) as results:
        report_table(results, tmp_path)
        argv = ["report", "--table", TABLE, "--catalog", CATALOG, "-o", str(target), "--top", "2"]
        assert main(argv) == 0  # the latest run: night 2
    out = capsys.readouterr().out
    assert out == f"wrote {target}: run {NIGHT_2[0]} ({NIGHT_2[1]}), 5 ok, 2 errors, top 2 shown\n"
    assert _Page(target.read_text()).all("img")


def test_cli_unknown_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path / "x.html")
    with results_catalog(tmp_path) as results:
        commit_run(results, "r1", "2026-11-25", [Row("a.png", 0.7)])
        argv = ["report", "--table", TABLE, "--catalog", CATALOG, "--run", "r2", "-o", target]
        assert main(argv) == 1
        assert main(["report", "--table", "vision.other", "--catalog", CATALOG, "-o", target]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("vip2clip: error: run 'r2' has no committed rows in table ")
    assert err[1].startswith("vip2clip: error: table vision.other does not exist in catalog")
    assert len(err) == 2 and not (tmp_path / "x.html").exists()
