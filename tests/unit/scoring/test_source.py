"""Listing of folders and manifests (S3 listing is covered by the integration tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from vip2clip.errors import StorageError
from vip2clip.scoring import source


def _tree(root: Path) -> list[Path]:
    files = [
        root / "a.jpg",
        root / "B.PNG",
        root / "notes.txt",
        root / "sub" / "c.png",
        root / "sub" / "deeper" / "d.jpeg",
        root / "z" / "e.png",
    ]
    for i, file in enumerate(files):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"x" * (i + 1))
    return files


def test_has_extension_is_case_insensitive_and_dot_optional() -> None:
    assert source.has_extension("/x/IMG.JPG", ["jpg"])
    assert source.has_extension("s3://b/p/x.png", [".png"])
    assert not source.has_extension("s3://b/p/x.png.txt", [".png"])
    assert not source.has_extension("s3://b/p/png", [".png"])


def test_local_listing_is_recursive_filtered_and_paged(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    pages = list(source.iter_listing_pages(str(tmp_path), [".jpg", ".png", ".jpeg"], page_size=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [o.uri for page in pages for o in page]
    expected = sorted(str(f) for f in files if f.suffix.lower() != ".txt")
    assert sorted(listed) == expected
    sizes = {o.uri: o.size for page in pages for o in page}
    assert sizes[str(tmp_path / "sub" / "c.png")] == 4
    assert all(o.etag is None and o.mtime is not None for page in pages for o in page)


def test_listing_a_single_file_source(tmp_path: Path) -> None:
    image = _tree(tmp_path)[0]
    pages = list(source.iter_listing_pages(str(image), [".jpg"]))
    assert [o.uri for o in pages[0]] == [str(image)]


def test_page_to_table_has_the_listing_schema(tmp_path: Path) -> None:
    _tree(tmp_path)
    page = next(source.iter_listing_pages(str(tmp_path), [".png"]))
    table = source.page_to_table(page)
    assert table.schema == source.LISTING_SCHEMA
    assert table.num_rows == len(page)


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        source.check_source(str(tmp_path / "nope"))


def test_manifest_detection(tmp_path: Path) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_text("a.png\n")
    folder = tmp_path / "images.csv"  # a folder with a manifest-like name is not a manifest
    folder.mkdir()
    assert source.is_manifest(str(manifest))
    assert not source.is_manifest(str(folder))
    assert not source.is_manifest(str(tmp_path))


def test_text_manifest_resolves_relative_entries_and_drops_comments() -> None:
    batch = pa.table({"text": ["a.png", "  ", "# comment", "s3://b/x.jpg", "/abs/y.png"]})
    table = source.manifest_to_listing(batch, "s3://bucket/lists")
    assert table.schema == source.LISTING_SCHEMA
    assert table.column("source_uri").to_pylist() == [
        "s3://bucket/lists/a.png",
        "s3://b/x.jpg",
        "/abs/y.png",
    ]
    assert table.column("object_size").null_count == 3


def test_csv_manifest_keeps_given_identity() -> None:
    batch = pa.table({"uri": ["s3://b/x.jpg"], "object_size": [12], "object_etag": ["abc"]})
    table = source.manifest_to_listing(batch, "s3://b")
    assert table.to_pylist()[0] == {
        "source_uri": "s3://b/x.jpg",
        "object_size": 12,
        "object_etag": "abc",
        "object_mtime": None,
    }


def test_manifest_without_uri_column_is_rejected() -> None:
    with pytest.raises(StorageError, match="no URI column"):
        source.manifest_to_listing(pa.table({"name": ["x"]}), "/tmp")


def test_fill_identity_looks_up_missing_sizes(tmp_path: Path) -> None:
    image = _tree(tmp_path)[1]
    batch = source.manifest_to_listing(
        pa.table({"text": [str(image), str(tmp_path / "gone.png")]}), str(tmp_path)
    )
    filled = source.fill_identity(batch, source.StorageConfig()).to_pylist()
    assert filled[0]["object_size"] == 2
    assert filled[0]["object_mtime"] is not None
    assert filled[1]["object_size"] is None  # left for the read stage to report


def test_fill_identity_keeps_entries_it_cannot_inspect(tmp_path: Path) -> None:
    entries = ["http://127.0.0.1:9/x.png", "n" * 300 + ".png", "/dev/zero", "gone.png"]
    batch = source.manifest_to_listing(pa.table({"text": entries}), str(tmp_path))
    filled = source.fill_identity(batch, source.StorageConfig()).to_pylist()
    assert [row["source_uri"] for row in filled] == [
        entries[0],
        str(tmp_path / entries[1]),
        "/dev/zero",
        str(tmp_path / "gone.png"),
    ]
    assert [row["object_size"] for row in filled] == [None, None, 0, None]


def test_special_files_in_a_folder_are_listed_for_the_read_stage_to_refuse(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere")
    pages = list(source.iter_listing_pages(str(tmp_path), [".png"]))
    listed = {Path(o.uri).name: o.size for page in pages for o in page}
    assert listed == {"a.png": 1, "dangling.png": None, "pipe.png": 0}
