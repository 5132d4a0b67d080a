"""Synthetic anomaly data: deterministic, exact masks, distinct domains, all writers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vip2clip.data.synthetic import (
    DEFECTS,
    DOMAINS,
    generate_archive,
    generate_dataset,
    image_rng,
    render_image,
)
from vip2clip.errors import ConfigError

SIZE = 64
VISIBLE_CHANGE = 20.0  # mean absolute RGB change inside a defect, in grey levels


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    options = {
        "domains": ("metal", "tiles"),
        "n_train_good": 2,
        "n_test_good": 1,
        "n_test_bad": 3,
        "image_size": SIZE,
    }
    generate_dataset(str(tmp_path / "a"), seed=1, **options)  # type: ignore[arg-type]
    generate_dataset(str(tmp_path / "b"), seed=1, **options)  # type: ignore[arg-type]
    generate_dataset(str(tmp_path / "c"), seed=2, **options)  # type: ignore[arg-type]
    a, b, c = (_tree_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)  # every image (and mask) differs


def test_more_images_keep_the_earlier_ones(tmp_path: Path) -> None:
    small = generate_dataset(
        str(tmp_path / "s"),
        domains=("wood",),
        n_train_good=2,
        n_test_good=1,
        n_test_bad=6,
        image_size=SIZE,
    )
    generate_dataset(
        str(tmp_path / "l"),
        domains=("wood",),
        n_train_good=4,
        n_test_good=2,
        n_test_bad=12,
        image_size=SIZE,
    )
    s, large = _tree_digest(tmp_path / "s"), _tree_digest(tmp_path / "l")
    assert small.files == len(s) == 2 + 1 + 6 * 2
    assert all(large[k] == v for k, v in s.items())


@pytest.mark.parametrize("domain", DOMAINS)
def test_defects_change_pixels_exactly_inside_their_masks(domain: str) -> None:
    for index, defect in enumerate(DEFECTS):
        good = render_image(domain, None, SIZE * 2, image_rng(7, domain, index))
        bad = render_image(domain, defect, SIZE * 2, image_rng(7, domain, index))
        assert not good.mask.any()
        assert bad.mask.sum() >= 12, (domain, defect)
        diff = np.abs(bad.rgb.astype(np.int16) - good.rgb.astype(np.int16)).max(axis=-1)
        assert not diff[~bad.mask].any(), f"{domain}/{defect} changed pixels outside its mask"
        assert (diff[bad.mask] > 0).all()
        assert diff[bad.mask].mean() > VISIBLE_CHANGE, (domain, defect, diff[bad.mask].mean())


def test_pill_defects_stay_on_the_pills() -> None:
    for index, defect in enumerate(DEFECTS):
        good = render_image("pills", None, SIZE * 2, image_rng(3, index))
        bad = render_image("pills", defect, SIZE * 2, image_rng(3, index))
        rgb = good.rgb.astype(np.int16)
        background = rgb[..., 1] > rgb[..., 0] + 30  # green felt, not a cream pill
        assert not (bad.mask & background).any(), defect


def _texture_features(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.astype(np.float32).mean(axis=-1)
    dx = np.abs(np.diff(grey, axis=1)).mean()
    dy = np.abs(np.diff(grey, axis=0)).mean()
    return np.array([*rgb.reshape(-1, 3).mean(axis=0), grey.std(), dx, dy])


def test_domains_are_visually_distinct() -> None:
    features = {
        d: np.mean(
            [
                _texture_features(render_image(d, None, 128, image_rng(0, d, i)).rgb)
                for i in range(4)
            ],
            axis=0,
        )
        for d in DOMAINS
    }
    for i, first in enumerate(DOMAINS):
        for second in DOMAINS[i + 1 :]:
            distance = float(np.linalg.norm(features[first] - features[second]))
            assert distance > 25.0, (first, second, distance)


def test_ground_truth_files_match_the_images(tmp_path: Path) -> None:
    generate_dataset(
        str(tmp_path),
        domains=("fabric",),
        n_train_good=1,
        n_test_good=1,
        n_test_bad=6,
        image_size=SIZE,
    )
    masks = sorted((tmp_path / "fabric/ground_truth").rglob("*_mask.png"))
    assert len(masks) == 6 and {m.parent.name for m in masks} == set(DEFECTS)
    for mask_file in masks:
        mask = np.asarray(Image.open(mask_file))
        image = Image.open(
            tmp_path / "fabric/test" / mask_file.parent.name / mask_file.name.replace("_mask", "")
        )
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) == {0, 255}


def test_archive_is_flat_mixed_and_deterministic(tmp_path: Path) -> None:
    entries = generate_archive(
        str(tmp_path / "a"),
        count=40,
        domains=("wood", "pills"),
        image_size=SIZE,
        defect_rate=0.5,
        seed=4,
    )
    again = generate_archive(
        str(tmp_path / "b"),
        count=40,
        domains=("wood", "pills"),
        image_size=SIZE,
        defect_rate=0.5,
        seed=4,
    )
    files = sorted((tmp_path / "a").iterdir())
    assert [Path(e.uri) for e in entries] == files and all(f.is_file() for f in files)
    assert list(_tree_digest(tmp_path / "a").values()) == list(
        _tree_digest(tmp_path / "b").values()
    )
    assert [(e.domain, e.defect) for e in entries] == [(e.domain, e.defect) for e in again]
    assert {f.suffix for f in files} == {".png", ".jpg"}
    assert 8 <= sum(e.defect is not None for e in entries) <= 32
    for entry in entries:
        with Image.open(entry.uri) as image:
            assert image.size == (entry.width, entry.height)
    assert len({(e.width, e.height) for e in entries}) > 1


def test_unknown_names_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown synthetic domain 'lava'"):
        generate_dataset(str(tmp_path), domains=("lava",))
    with pytest.raises(ConfigError, match="unknown defect kind"):
        generate_dataset(str(tmp_path), defects=("dent",))
    with pytest.raises(ConfigError, match="unknown layout"):
        generate_dataset(str(tmp_path), layout="coco")  # type: ignore[arg-type]
