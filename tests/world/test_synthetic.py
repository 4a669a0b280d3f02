"""The synthetic harmonization world: determinism, iHarmony4 layout, physics, ground truth, cache."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from raiha.io.build_journal import read_journal
from raiha.io.errors import RaihaDataError
from raiha.io.naming import mask_name_for, real_name_for
from raiha.io.split_lists import read_split
from raiha.synth import main as synth_main
from raiha.world import (
    ILLUMINANT_TABLE,
    SUBSETS,
    SyntheticWorldConfig,
    build_catalogue,
    ensure_world,
    generate_world,
    load_ground_truth,
    plan_world,
    relevant_reference_table,
    relevant_references,
    relight,
    render_scene,
    shading_field,
)
from raiha.world import generate as generate_module
from raiha.world.catalogue import palette_signature
from raiha.world.render import render_albedo
from raiha.world.tables import PALETTE_MIN_SEPARATION

SMALL = SyntheticWorldConfig(image_size=48, num_train=60, num_test=20, num_identities=12)
LIST_FILES = ["IHD_train.txt", "IHD_test.txt"] + [
    f"{s}_{p}.txt" for s in SUBSETS for p in ("train", "test")
]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world_a") / "world", SMALL)


def test_same_seed_is_byte_identical_and_other_seed_differs(
    small_world: Path, tmp_path: Path
) -> None:
    again = generate_world(tmp_path / "again", SMALL)
    for name in [*LIST_FILES, "ground_truth.json", "world.json"]:
        assert (small_world / name).read_bytes() == (again / name).read_bytes(), name
    for real_key, entry in load_ground_truth(small_world)["images"].items():
        for key in (real_key, entry["composite"], entry["mask"]):
            np.testing.assert_array_equal(_pixels(small_world / key), _pixels(again / key))
    other = generate_world(tmp_path / "other", dataclasses.replace(SMALL, seed=1))
    assert (other / "ground_truth.json").read_bytes() != (
        small_world / "ground_truth.json"
    ).read_bytes()
    first_real = _read_lines(small_world / "IHD_train.txt")[0].replace(
        "composite_images", "real_images"
    )
    first_real = first_real.rsplit("_", 2)[0] + ".jpg"
    assert not np.array_equal(_pixels(small_world / first_real), _pixels(other / first_real))


def test_layout_follows_ihd_naming_and_counts(small_world: Path) -> None:
    listed: dict[str, list[str]] = {
        split: _read_lines(small_world / f"IHD_{split}.txt") for split in ("train", "test")
    }
    assert len(listed["train"]) == SMALL.num_train and len(listed["test"]) == SMALL.num_test
    ground_truth = load_ground_truth(small_world)
    seen_reals = set()
    for split, lines in listed.items():
        for line in lines:
            subset, folder, name = line.split("/")
            assert folder == "composite_images" and name.startswith(subset[0])
            assert (small_world / line).is_file()
            mask_path = small_world / subset / "masks" / mask_name_for(name)
            real_key = f"{subset}/real_images/{real_name_for(name)}"
            assert mask_path.is_file() and (small_world / real_key).is_file()
            entry = ground_truth["images"][real_key]
            assert (entry["split"], entry["subset"], entry["composite"]) == (split, subset, line)
            assert entry["mask"] == f"{subset}/masks/{mask_name_for(name)}"
            seen_reals.add(real_key)
        for subset in SUBSETS:
            bare = _read_lines(small_world / f"{subset}_{split}.txt")
            assert bare == [line.split("/")[-1] for line in lines if line.startswith(f"{subset}/")]
        num_easy = sum(line.startswith("easy/") for line in lines)
        assert num_easy == round(SMALL.easy_fraction * len(lines))
    assert seen_reals == set(ground_truth["images"])
    scene_ids = [int(Path(key).stem[1:]) for key in seen_reals]
    assert sorted(scene_ids) == list(range(SMALL.num_train + SMALL.num_test))
    for subset in SUBSETS:  # no unlisted files
        assert len(list((small_world / subset / "real_images").iterdir())) == sum(
            key.startswith(f"{subset}/") for key in seen_reals
        )


def test_project_reader_reads_both_list_formats(small_world: Path, tmp_path: Path) -> None:
    for split, count in (("train", SMALL.num_train), ("test", SMALL.num_test)):
        records = read_split(small_world, split)
        assert len(records) == count and {r.subset for r in records} == set(SUBSETS)
        assert all(
            (small_world / path).is_file()
            for r in records
            for path in (r.composite, r.mask, r.real)
        )
        for subset in SUBSETS:  # per-subset lists alone give the same records
            (tmp_path / f"{subset}_{split}.txt").write_bytes(
                (small_world / f"{subset}_{split}.txt").read_bytes()
            )
        bare_records = read_split(tmp_path, split)
        assert sorted(bare_records, key=str) == sorted(records, key=str)


def test_composite_differs_from_real_only_inside_a_binary_mask(small_world: Path) -> None:
    ground_truth = load_ground_truth(small_world)
    for real_key, entry in ground_truth["images"].items():
        mask_image = Image.open(small_world / entry["mask"])
        assert mask_image.mode == "L"
        mask_values = np.asarray(mask_image)
        assert set(np.unique(mask_values).tolist()) <= {0, 255}
        inside = mask_values == 255
        assert inside.mean() >= 0.03
        real = _pixels(small_world / real_key).astype(np.float64)
        composite = _pixels(small_world / entry["composite"]).astype(np.float64)
        assert real.shape == composite.shape == (SMALL.image_size, SMALL.image_size, 3)
        difference = np.abs(real - composite)  # [S, S, 3]
        assert difference[~inside].mean() < 3.0, real_key
        assert difference[inside].mean(axis=0).max() > 10.0, real_key


def test_easy_scenes_hold_a_twin_and_hard_scenes_do_not(small_world: Path) -> None:
    ground_truth = load_ground_truth(small_world)
    for entry in ground_truth["images"].values():
        foreground = entry["foreground"]
        assert entry["objects"][-1]["identity"] == foreground["identity"]
        assert foreground["composite_illuminant"] != entry["illuminant"]
        same_identity = sum(obj["identity"] == foreground["identity"] for obj in entry["objects"])
        assert same_identity == (2 if entry["subset"] == "easy" else 1)
        identities = ground_truth["identities"]
        assert all(identities[obj["identity"]]["class"] == obj["class"] for obj in entry["objects"])


def _log_colour_gap(image: np.ndarray, region_a: np.ndarray, region_b: np.ndarray) -> float:
    """Largest per-channel |log| ratio of the mean colours of two regions of ``image`` ``[S, S, 3]``."""
    mean_a, mean_b = image[region_a].mean(axis=0), image[region_b].mean(axis=0)  # [3]
    return float(np.abs(np.log(mean_a + 1e-3) - np.log(mean_b + 1e-3)).max())


def test_twin_matches_foreground_in_real_but_not_in_composite() -> None:
    cfg = dataclasses.replace(SMALL, shading_strength=0.0)
    catalogue = build_catalogue(cfg)
    easy = [spec for spec in plan_world(cfg) if spec.subset == "easy"]
    assert easy
    for spec in easy:
        rendered = render_scene(spec, catalogue, cfg.shading_strength)
        twin_index = [
            i for i, obj in enumerate(spec.objects[:-1]) if obj.identity == spec.foreground.identity
        ]
        assert len(twin_index) == 1
        fg_pixels, twin_pixels = (
            rendered.labels == len(spec.objects) - 1,
            rendered.labels == twin_index[0],
        )
        np.testing.assert_array_equal(fg_pixels, rendered.mask)
        real_gap = _log_colour_gap(rendered.real, fg_pixels, twin_pixels)
        composite_gap = _log_colour_gap(rendered.composite, fg_pixels, twin_pixels)
        assert real_gap < 0.2 and composite_gap > 0.25, spec.name


def test_relit_colours_follow_gain_ratios() -> None:
    catalogue = build_catalogue(SMALL)
    spec = plan_world(SMALL)[0]
    rendered = render_scene(spec, catalogue, SMALL.shading_strength)
    shading = shading_field(SMALL.image_size, spec.shading_angle, SMALL.shading_strength)
    np.testing.assert_allclose(rendered.shading, shading)
    for light_a, light_b in itertools.combinations(range(SMALL.num_illuminants), 2):
        rgb_a, rgb_b = catalogue.illuminant_rgb[light_a], catalogue.illuminant_rgb[light_b]
        lit_a = relight(rendered.albedo, rgb_a, shading)
        lit_b = relight(rendered.albedo, rgb_b, shading)
        unclipped = (
            (lit_a < 1).all(axis=-1)
            & (lit_b < 1).all(axis=-1)
            & (rendered.albedo > 0.05).all(axis=-1)
        )
        assert unclipped.mean() > 0.5
        np.testing.assert_allclose(
            lit_a[unclipped] / lit_b[unclipped],
            np.broadcast_to(rgb_a / rgb_b, (int(unclipped.sum()), 3)),
            rtol=1e-5,
        )
    # the composite is the real image with only the foreground relit
    np.testing.assert_array_equal(rendered.composite[~rendered.mask], rendered.real[~rendered.mask])
    expected = relight(
        rendered.albedo, catalogue.illuminant_rgb[spec.composite_illuminant], shading
    )
    np.testing.assert_array_equal(rendered.composite[rendered.mask], expected[rendered.mask])


def test_illuminant_table_is_well_separated() -> None:
    effective = np.stack([light.rgb for light in ILLUMINANT_TABLE])  # [8, 3]
    for a, b in itertools.combinations(range(len(effective)), 2):
        assert np.abs(np.log(effective[a] / effective[b])).max() > 0.3, (
            ILLUMINANT_TABLE[a].name,
            ILLUMINANT_TABLE[b].name,
        )


def test_gallery_covers_identities_and_relevance_is_sound(small_world: Path) -> None:
    ground_truth = load_ground_truth(small_world)
    images = ground_truth["images"]
    train_scenes = {i: 0 for i in range(SMALL.num_identities)}
    for entry in images.values():
        if entry["split"] == "train":
            for identity in {obj["identity"] for obj in entry["objects"]}:
                train_scenes[identity] += 1
    assert min(train_scenes.values()) >= 2
    table = relevant_reference_table(ground_truth)
    for real_key, entry in images.items():
        refs = relevant_references(ground_truth, entry["composite"])
        assert refs == table[entry["composite"]] == relevant_references(ground_truth, real_key)
        assert real_key not in refs
        for ref in refs:
            ref_entry = images[ref]
            assert ref_entry["split"] == "train" and ref_entry["illuminant"] == entry["illuminant"]
            assert entry["foreground"]["identity"] in {
                obj["identity"] for obj in ref_entry["objects"]
            }
        if entry["split"] == "test":
            assert refs, f"test composite {entry['composite']} has no relevant train reference"
    with pytest.raises(KeyError):
        relevant_references(ground_truth, "easy/composite_images/e999999_1_1.jpg")


def test_ensure_world_is_idempotent_and_keyed(tmp_path: Path) -> None:
    cfg = dataclasses.replace(SMALL, image_size=32, num_train=10, num_test=4)
    root = ensure_world(tmp_path, cfg)
    assert root == tmp_path / "synthetic" / cfg.cache_key()
    stamps = {
        name: (root / name).stat().st_mtime_ns
        for name in ("world.json", "ground_truth.json", "IHD_train.txt")
    }
    assert ensure_world(tmp_path, cfg) == root
    assert stamps == {name: (root / name).stat().st_mtime_ns for name in stamps}
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["builds.jsonl", cfg.cache_key()]
    builds = read_journal(tmp_path / "synthetic" / "builds.jsonl")  # built once, journalled once
    assert [(entry["kind"], entry["name"]) for entry in builds] == [("synthetic_world", cfg.cache_key())]


def test_cache_key_changes_with_every_field() -> None:
    changes = {
        "seed": 3,
        "image_size": 96,
        "num_train": 61,
        "num_test": 21,
        "easy_fraction": 0.25,
        "num_identities": 13,
        "num_illuminants": 5,
        "num_materials": 3,
        "ground_material": None,
        "objects_per_scene": (2, 4),
        "shading_strength": 0.1,
        "composite_light_jitter": 0.2,
        "palette_prior": "log_uniform",
        "jpeg_quality": 90,
    }
    assert set(changes) == {field.name for field in dataclasses.fields(SyntheticWorldConfig)}
    keys = {SMALL.cache_key()} | {
        dataclasses.replace(SMALL, **{k: v}).cache_key() for k, v in changes.items()
    }
    assert len(keys) == len(changes) + 1
    assert SyntheticWorldConfig.from_dict(SMALL.to_dict()).cache_key() == SMALL.cache_key()
    assert dataclasses.replace(SMALL, objects_per_scene=[2, 3]).cache_key() == SMALL.cache_key()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 16),
        ("easy_fraction", 1.5),
        ("num_illuminants", 9),
        ("objects_per_scene", (1, 3)),
        ("num_identities", 2),
        ("ground_material", 4),
        ("composite_light_jitter", -0.1),
        ("palette_prior", "rgb"),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(SMALL, **{field: value})


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("render failed")

    monkeypatch.setattr(generate_module, "render_scene", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        generate_world(tmp_path / "world", SMALL)
    assert list(tmp_path.iterdir()) == []


def test_load_ground_truth_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RaihaDataError, match="ground_truth.json"):
        load_ground_truth(tmp_path)


def test_cli_writes_a_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--out",
        str(tmp_path / "cli"),
        "--image-size",
        "32",
        "--num-train",
        "8",
        "--num-test",
        "4",
        "--num-identities",
        "6",
        "--seed",
        "5",
    ]
    root = synth_main(args)
    printed = capsys.readouterr().out
    assert f"root: {root}" in printed and "easy_train 4" in printed and "hard_test 2" in printed
    assert (
        len(_read_lines(root / "IHD_train.txt")) == 8
        and len(_read_lines(root / "IHD_test.txt")) == 4
    )


@pytest.mark.parametrize("prior", ["hsv", "log_uniform"])
def test_identities_stay_distinguishable_under_any_light(prior: str) -> None:
    """Every pattern shows both palette colours, and palette signatures lie >= 0.25 apart."""
    cfg = SyntheticWorldConfig(num_train=30, num_test=0, num_identities=120, palette_prior=prior)
    catalogue = build_catalogue(cfg)
    signatures = palette_signature(catalogue.identity_palettes)  # [N, 3]
    gaps = np.minimum(
        np.linalg.norm(signatures[:, None] - signatures[None], axis=-1),
        np.linalg.norm(signatures[:, None] + signatures[None], axis=-1),
    )
    np.fill_diagonal(gaps, np.inf)
    assert gaps.min() >= PALETTE_MIN_SEPARATION
    for spec in plan_world(cfg):
        albedo, labels = render_albedo(spec, catalogue)
        for index, obj in enumerate(spec.objects):
            visible = albedo[labels == index]  # [n, 3]
            if len(visible) < 50:
                continue
            colours = {tuple(np.round(c * 255).astype(int)) for c in visible}
            palette = {tuple(int(v) for v in c) for c in catalogue.identity_palettes[obj.identity]}
            assert colours == palette, (spec.name, index)


def test_ground_material_is_shared_by_every_floor() -> None:
    shared = plan_world(SyntheticWorldConfig(num_train=60, num_test=20, ground_material=2))
    assert {spec.materials[1] for spec in shared} == {2}
    assert len({spec.materials[0] for spec in shared}) > 1
    free = plan_world(SyntheticWorldConfig(num_train=60, num_test=20, ground_material=None))
    assert len({spec.materials[1] for spec in free}) > 1


def test_composite_light_jitter_relights_only_the_composite_foreground() -> None:
    plain_cfg = SyntheticWorldConfig(num_train=40, num_test=10, num_identities=12)
    jitter_cfg = dataclasses.replace(plain_cfg, composite_light_jitter=0.3)
    plain, jittered = plan_world(plain_cfg), plan_world(jitter_cfg)
    # the jitter has its own generator: the same scenes, lights and layouts
    assert [dataclasses.replace(s, composite_gains=(1.0, 1.0, 1.0)) for s in jittered] == plain
    assert {s.composite_gains for s in plain} == {(1.0, 1.0, 1.0)}
    gains = np.asarray([s.composite_gains for s in jittered])  # [N, 3]
    assert np.abs(np.log(gains)).max() <= 0.3 + 1e-9
    assert np.abs(np.log(gains)).mean() > 0.1  # spread over the range, per channel
    assert len({tuple(g) for g in gains}) == len(jittered)
    catalogue = build_catalogue(jitter_cfg)
    spec = jittered[0]
    rendered = render_scene(spec, catalogue, jitter_cfg.shading_strength)
    reference = render_scene(plain[0], catalogue, plain_cfg.shading_strength)
    np.testing.assert_array_equal(rendered.real, reference.real)
    expected = relight(
        rendered.albedo,
        catalogue.illuminant_rgb[spec.composite_illuminant] * np.asarray(spec.composite_gains, np.float32),
        rendered.shading,
    )
    np.testing.assert_array_equal(rendered.composite[rendered.mask], expected[rendered.mask])
    assert not np.array_equal(rendered.composite[rendered.mask], reference.composite[reference.mask])


def test_jpegs_keep_full_resolution_chroma(small_world: Path) -> None:
    real = next((small_world / "easy" / "real_images").iterdir())
    with Image.open(real) as image:
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4


def test_log_uniform_palettes_cover_their_range_in_every_channel() -> None:
    """The log-uniform prior: channels spread over [0.1, 0.6] independently (no hue/value
    structure that would give the light away), and both colours of a palette differ."""
    catalogue = build_catalogue(SyntheticWorldConfig(num_train=30, num_test=0, num_identities=240, palette_prior="log_uniform"))
    colours = catalogue.identity_palettes.reshape(-1, 3).astype(np.float64) / 255.0  # [2N, 3]
    assert colours.min() >= 0.098 and colours.max() <= 0.602
    logs = np.log(colours)
    assert np.abs(logs.mean(axis=0) - np.log([0.1, 0.6]).mean()).max() < 0.12  # centred in log space
    assert np.abs(np.corrcoef(logs.T) - np.eye(3)).max() < 0.2  # channels independent
    assert (np.linalg.norm(palette_signature(catalogue.identity_palettes), axis=1) >= 0.5).all()
