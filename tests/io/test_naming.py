"""iHarmony4 naming: composite -> mask -> real, for every subset's style."""

from __future__ import annotations

from pathlib import Path

import pytest

from raiha.io.errors import RaihaDataError
from raiha.io.naming import mask_name_for, real_name_for


@pytest.mark.parametrize(
    ("composite", "mask", "real"),
    [
        ("a3630_1_5.jpg", "a3630_1.png", "a3630.jpg"),  # HAdobe5k
        ("c21070_1396052_1.jpg", "c21070_1396052.png", "c21070.jpg"),  # HCOCO
        ("f636_1_2.jpg", "f636_1.png", "f636.jpg"),  # HFlickr
        ("d90000001-11_1_1.jpg", "d90000001-11_1.png", "d90000001-11.jpg"),  # Hday2night
        (
            "d1048-20120628-200951_1_3.jpg",
            "d1048-20120628-200951_1.png",
            "d1048-20120628-200951.jpg",
        ),
        ("HAdobe5k/composite_images/a3630_1_5.jpg", "a3630_1.png", "a3630.jpg"),  # a path
    ],
)
def test_known_names(composite: str, mask: str, real: str) -> None:
    assert mask_name_for(composite) == mask
    assert real_name_for(composite) == real


def test_mask_suffix_option() -> None:
    assert mask_name_for("c35030_434421_1.jpg", mask_suffix=".jpg") == "c35030_434421.jpg"


@pytest.mark.parametrize("bad_name", ["a3630_1.jpg", "a3630.jpg", "a3630__5.jpg", "_1_5.jpg", ""])
def test_bad_names_raise_naming_the_file(bad_name: str) -> None:
    with pytest.raises(RaihaDataError, match="iHarmony4 pattern") as error:
        mask_name_for(bad_name)
    assert repr(bad_name) in str(error.value)
    with pytest.raises(RaihaDataError):
        real_name_for(bad_name)


def test_every_real_test_list_name_parses(shared_data_dir: Path) -> None:
    list_path = shared_data_dir / "iharmony4" / "IHD_test.txt"
    if not list_path.is_file():
        pytest.skip(f"{list_path} is absent")
    names = [line.split("/")[-1] for line in list_path.read_text().splitlines() if line.strip()]
    assert len(names) == 7404
    for name in names:
        mask_stem = mask_name_for(name)[: -len(".png")]
        real_stem = real_name_for(name)[: -len(".jpg")]
        assert name.startswith(mask_stem + "_") and mask_stem.startswith(real_stem + "_")
