"""Mask folders: binary PNG / GIF (Carvana) / JPEG masks, class-index masks with classes.txt, colour masks
with classes.csv or a colour map; written and read back in all three kinds; mismatched and broken masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import Example
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import OutputError, OutputFolder
from masksmith.data import load_dataset
from masksmith.data.formats import masks
from masksmith.data.rasterize import instance_masks, semantic_mask

W, H = 64, 48
ROAD, CAR = (128, 64, 128), (0, 0, 142)  # Cityscapes colours


def photo(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def blob(k: int = 0) -> np.ndarray:
    """A bool mask: a rectangle plus a separate square (two objects)."""
    m = np.zeros((H, W), bool)
    m[10:30, 5 + k:25 + k] = True
    m[35:45, 40:50] = True
    return m


def write_binary(root: Path, n: int = 3) -> Path:
    for k in range(n):
        photo(root / "images" / f"cell_{k:03d}.png")
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(blob(k).astype(np.uint8) * 255, "L").save(root / "masks" / f"cell_{k:03d}.png")
    return root


def write_carvana(root: Path) -> Path:
    """Carvana's Kaggle layout: train/<car>_<view>.jpg, train_masks/<car>_<view>_mask.gif (2-colour palette
    GIFs holding indices 0/1), train_masks.csv, metadata.csv and an unlabelled test/ folder."""
    rows = ["img,rle_mask"]
    for view in ("01", "02"):
        photo(root / "train" / f"00087a6bd4dc_{view}.jpg")
        gif = Image.fromarray(blob(int(view)).astype(np.uint8), "P")
        gif.putpalette([0, 0, 0, 255, 255, 255])
        (root / "train_masks").mkdir(exist_ok=True)
        gif.save(root / "train_masks" / f"00087a6bd4dc_{view}_mask.gif")
        rows.append(f"00087a6bd4dc_{view}.jpg,1 2 5 6")
    (root / "train_masks.csv").write_text("\n".join(rows) + "\n")
    (root / "metadata.csv").write_text("id,year,make,model,trim1,trim2\n"
                                       "00087a6bd4dc,2014,Acura,RLX,RLX,w/Tech\n")
    photo(root / "test" / "0004d4463b50_01.jpg")
    return root


def write_index(root: Path, with_names: bool = True) -> Path:
    """Grey class-index PNGs (0 background, 1 road, 2 car, 255 void) in images/ + labels/ + classes.txt."""
    for k in range(2):
        photo(root / "images" / f"street_{k}.jpg")
        lab = np.zeros((H, W), np.uint8)
        lab[30:, :] = 1
        lab[15:35, 10 + k:30 + k] = 2
        lab[0:3, :] = 255
        (root / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(lab, "L").save(root / "labels" / f"street_{k}.png")
    if with_names:
        (root / "classes.txt").write_text("background\nroad\ncar\nsign\n")
    return root


def colour_mask(k: int = 0) -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[30:, :] = ROAD
    rgb[15:35, 10 + k:30 + k] = CAR
    return rgb


def write_colour(root: Path, csv: bool = True, jpeg: bool = False) -> Path:
    for k in range(2):
        photo(root / "images" / f"frame_{k}.png")
        (root / "masks").mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(colour_mask(k), "RGB")
        if jpeg:
            im.save(root / "masks" / f"frame_{k}_mask.jpg", quality=85)
        else:
            im.save(root / "masks" / f"frame_{k}.png")
    if csv:
        (root / "classes.csv").write_text("name,r,g,b\nbackground,0,0,0\nroad,128,64,128\ncar,0,0,142\n"
                                          "sky,70,130,180\n")
    return root


def test_binary_png_masks(tmp_path: Path) -> None:
    write_binary(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.format == "masks"
    assert ds.class_names == ["foreground"]
    assert [s.name for s in ds.samples] == [f"images/cell_00{k}.png" for k in range(3)]
    sample = ds.samples[1]
    assert [(r.label, r.is_instance) for r in sample.regions] == [("foreground", False)]
    assert (sample.width, sample.height) == (W, H)  # filled from the image by the shared checks
    sem = semantic_mask(sample, ds.class_map.index())
    assert np.array_equal(sem == 1, blob(1))
    _, labels, _ = instance_masks(sample, ds.class_map.index())
    assert len(labels) == 2  # the two blobs become two objects
    assert load_dataset(tmp_path, class_name="nucleus").class_names == ["nucleus"]


def test_carvana_gif_masks(tmp_path: Path) -> None:
    write_carvana(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.format == "masks" and ds.class_names == ["foreground"]
    assert [s.name for s in ds.samples] == ["train/00087a6bd4dc_01.jpg", "train/00087a6bd4dc_02.jpg"]
    sem = semantic_mask(ds.samples[0], ds.class_map.index())
    assert np.array_equal(sem == 1, blob(1))
    assert sem[20, 10] == 1 and sem[2, 2] == 0


def write_oxford_pets(root: Path) -> Path:
    """Oxford-IIIT Pet's layout (its README): images/*.jpg, annotations/trimaps/*.png (1 pet, 2 background,
    3 border) beside annotations/xmls/ (head boxes), list.txt and trainval.txt; the tarball also carries
    macOS `._` copies of the trimaps."""
    lines = []
    for k, breed in enumerate(("Abyssinian_1", "basset_hound_2")):
        photo(root / "images" / f"{breed}.jpg")
        trimap = np.full((H, W), 2, np.uint8)
        trimap[blob(k)] = 1
        (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        Image.fromarray(trimap, "L").save(root / "annotations" / "trimaps" / f"{breed}.png")
        (root / "annotations" / "trimaps" / f"._{breed}.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (root / "annotations" / "xmls").mkdir(exist_ok=True)
        (root / "annotations" / "xmls" / f"{breed}.xml").write_text("<annotation></annotation>")
        lines.append(f"{breed} {k + 1} {k + 1} 1")
    (root / "annotations" / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "annotations" / "trainval.txt").write_text("\n".join(lines) + "\n")
    return root


def test_masks_one_level_down_in_the_mask_folder_oxford_pets(tmp_path: Path) -> None:
    write_oxford_pets(tmp_path)
    ds = load_dataset(tmp_path, class_names={"1": "pet", "2": "background", "3": "border"})
    assert ds.format == "masks" and [s.name for s in ds.samples] == ["images/Abyssinian_1.jpg",
                                                               "images/basset_hound_2.jpg"]
    sem = semantic_mask(ds.samples[1], ds.class_map.index())
    assert np.array_equal(sem == ds.class_names.index("pet") + 1, blob(1))
    # two sub-folders of masks named like the images: nothing is guessed, the old message stands
    (tmp_path / "annotations" / "other").mkdir()
    for name in ("Abyssinian_1.png", "basset_hound_2.png"):
        (tmp_path / "annotations" / "other" / name).write_bytes((tmp_path / "annotations" / "trimaps" / name)
                                                                 .read_bytes())
    with pytest.raises(DatasetError, match="has no mask in annotations/"):
        load_dataset(tmp_path)


def write_isic(root: Path, split: str = "Training", n: int = 3, first: int = 0) -> Path:
    """ISIC 2018 task 1's layout (its data description): <id>.jpg in ISIC2018_Task1-2_<Split>_Input/ (with
    LICENSE.txt and ATTRIBUTION.txt), 0/255 masks <id>_segmentation.png in ISIC2018_Task1_<Split>_GroundTruth/."""
    for k in range(first, first + n):
        photo(root / f"ISIC2018_Task1-2_{split}_Input" / f"ISIC_{k:07d}.jpg")
        (root / f"ISIC2018_Task1_{split}_GroundTruth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(blob(k).astype(np.uint8) * 255, "L").save(
            root / f"ISIC2018_Task1_{split}_GroundTruth" / f"ISIC_{k:07d}_segmentation.png")
    (root / f"ISIC2018_Task1-2_{split}_Input" / "LICENSE.txt").write_text("CC-BY-NC\n")
    return root


def test_folders_of_any_names_paired_by_their_files_isic(tmp_path: Path) -> None:
    write_isic(tmp_path)
    write_isic(tmp_path, "Validation", n=2, first=10)
    photo(tmp_path / "ISIC2018_Task1-2_Test_Input" / "ISIC_0000100.jpg")  # no ground truth published
    ds = load_dataset(tmp_path)
    assert ds.format == "masks" and ds.class_names == ["foreground"] and len(ds.samples) == 5
    assert sorted({s.split for s in ds.samples}) == ["train", "val"]
    sample = next(s for s in ds.samples if s.name.endswith("ISIC_0000001.jpg"))
    assert np.array_equal(semantic_mask(sample, ds.class_map.index()) == 1, blob(1))
    # pointing at either folder of a pair reads that pair
    for folder in ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"):
        assert len(load_dataset(tmp_path / folder).samples) == 2


def test_folders_named_alike_by_their_files_alone_are_not_paired(tmp_path: Path) -> None:
    """Files named alike in two folders whose names say nothing: either could be the masks; nothing is guessed."""
    for k in range(3):
        photo(tmp_path / "left" / f"p{k}.png")
        (tmp_path / "right").mkdir(exist_ok=True)
        Image.fromarray(blob(k).astype(np.uint8) * 255, "L").save(tmp_path / "right" / f"p{k}.png")
    with pytest.raises(DatasetError, match="no annotation format recognised"):
        load_dataset(tmp_path)
    (tmp_path / "right").rename(tmp_path / "right_gt")  # the name says masks: paired
    assert len(load_dataset(tmp_path).samples) == 3


def test_nested_photos_graded_masks_and_a_mask_folder_with_a_space(tmp_path: Path) -> None:
    """CUB-200-2011: images/<species>/x.jpg + segmentations/<species>/x.png whose grey levels (0, 51, ..., 255)
    average five annotators; CVC-ClinicDB: Original/1.tif + "Ground Truth"/1.tif."""
    for k, species in enumerate(("001.Black_footed_Albatross", "002.Laysan_Albatross")):
        photo(tmp_path / "cub" / "images" / species / f"{species[4:]}_0001_79.jpg")
        soft = (blob(k) * 204).astype(np.uint8)
        soft[0, :4] = (0, 51, 102, 153)
        soft[1, 0] = 255
        (tmp_path / "cub" / "segmentations" / species).mkdir(parents=True)
        Image.fromarray(soft, "L").save(tmp_path / "cub" / "segmentations" / species / f"{species[4:]}_0001_79.png")
    with pytest.raises(DatasetError, match=r"grey levels 0, 51, 102, 153, 204, 255, evenly spaced") as err:
        load_dataset(tmp_path / "cub")
    assert "threshold=128" in str(err.value)
    ds = load_dataset(tmp_path / "cub", threshold=128)
    assert ds.class_names == ["foreground"] and len(ds.samples) == 2
    expected = blob(1)
    expected[1, 0] = expected[0, 3] = True  # 255 and 153 are at least 128
    assert np.array_equal(semantic_mask(ds.samples[1], ds.class_map.index()) == 1, expected)
    for k in range(2):
        photo(tmp_path / "cvc" / "Original" / f"{k + 1}.tif")
        (tmp_path / "cvc" / "Ground Truth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(blob(k).astype(np.uint8) * 255, "L").save(tmp_path / "cvc" / "Ground Truth" / f"{k + 1}.tif")
    assert len(load_dataset(tmp_path / "cvc").samples) == 2


def test_antialiased_jpeg_masks_are_thresholded(tmp_path: Path) -> None:
    photo(tmp_path / "img" / "leaf.png")
    (tmp_path / "mask").mkdir()
    soft = Image.fromarray(blob().astype(np.uint8) * 255, "L").filter(ImageFilter.GaussianBlur(1.5))
    soft.save(tmp_path / "mask" / "leaf_mask.jpg", quality=75)
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["foreground"]
    sem = semantic_mask(ds.samples[0], ds.class_map.index())
    assert sem[20, 15] == 1 and sem[40, 45] == 1 and sem[2, 60] == 0
    assert abs(int((sem == 1).sum()) - int(blob().sum())) < 40


def test_index_masks_with_classes_txt_and_void(tmp_path: Path) -> None:
    write_index(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.format == "masks"
    assert ds.class_names == ["road", "car", "sign"]  # line 0 is the background; 'sign' has no pixels
    sample = ds.samples[0]
    index = ds.class_map.index()
    sem = semantic_mask(sample, index)
    assert sem[40, 50] == index["road"] and sem[20, 15] == index["car"] and sem[10, 50] == 0
    assert (sem[0:3] == 255).all() and sample.ignore_rle is not None
    assert all(not r.is_instance for r in sample.regions)


def test_index_masks_without_names(tmp_path: Path) -> None:
    write_index(tmp_path, with_names=False)
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["class_1", "class_2"]
    named = load_dataset(tmp_path, class_names=["road", "car"])
    assert named.class_names == ["road", "car"]


def test_colour_masks_with_classes_csv(tmp_path: Path) -> None:
    write_colour(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["road", "car", "sky"]
    assert ds.classes[1].color == CAR
    index = ds.class_map.index()
    sem = semantic_mask(ds.samples[1], index)
    assert sem[40, 50] == index["road"] and sem[20, 12] == index["car"] and sem[5, 5] == 0


def test_colour_jpeg_masks_with_colour_map_option(tmp_path: Path) -> None:
    write_colour(tmp_path, csv=False, jpeg=True)
    ds = load_dataset(tmp_path, color_map={"road": ROAD, "car": "#00008e"})
    index = ds.class_map.index()
    sem = semantic_mask(ds.samples[0], index)
    expected = np.zeros((H, W), np.uint8)
    expected[30:] = index["road"]
    expected[15:35, 10:30] = index["car"]
    assert (sem == expected).mean() > 0.97  # JPEG blurs the edges a little, the colours stay within reach
    # a colour no class has is still found inside a region, away from the blended edges
    rgb = colour_mask(1)
    rgb[2:14, 40:52] = (220, 20, 60)
    Image.fromarray(rgb, "RGB").save(tmp_path / "masks" / "frame_1_mask.jpg", quality=85)
    with pytest.raises(DatasetError, match=r"frame_1_mask.jpg: .*that match no class"):
        load_dataset(tmp_path, color_map={"road": ROAD, "car": "#00008e"})


def test_colour_masks_without_colours_ask_for_them(tmp_path: Path) -> None:
    write_colour(tmp_path, csv=False)
    with pytest.raises(DatasetError, match="classes.csv"):
        load_dataset(tmp_path)


def test_unknown_colour_names_colour_and_file(tmp_path: Path) -> None:
    write_colour(tmp_path)
    rgb = colour_mask(1)
    rgb[0:5, 0:5] = (220, 20, 60)
    Image.fromarray(rgb, "RGB").save(tmp_path / "masks" / "frame_1.png")
    with pytest.raises(DatasetError, match=r"frame_1.png: .*colour \(220, 20, 60\) #dc143c in 25 px") as err:
        load_dataset(tmp_path)
    assert "add the colour to" in str(err.value) and "classes.csv" in str(err.value)
    ds = load_dataset(tmp_path, strict=False)
    assert [s.name for s in ds.samples] == ["images/frame_0.png"] and len(ds.problems) == 1


def test_mask_size_mismatch_gives_both_sizes(tmp_path: Path) -> None:
    write_binary(tmp_path, n=2)
    Image.new("L", (32, 24), 255).save(tmp_path / "masks" / "cell_001.png")
    with pytest.raises(DatasetError, match="its mask is 32x24 but the image is 64x48"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, strict=False)
    assert [s.name for s in ds.samples] == ["images/cell_000.png"]
    assert "32x24" in str(ds.problems[0]) and "64x48" in str(ds.problems[0])


def test_image_without_mask(tmp_path: Path) -> None:
    write_binary(tmp_path, n=2)
    photo(tmp_path / "images" / "cell_009.png")
    with pytest.raises(DatasetError, match="cell_009.png: has no mask in masks/"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, strict=False)
    assert len(ds.samples) == 2 and "cell_009" in str(ds.problems[0])


def test_split_folders_one_level_down_and_mask_pattern(tmp_path: Path) -> None:
    for split in ("train", "val"):
        photo(tmp_path / split / "images" / f"{split}_a.png")
        (tmp_path / split / "masks").mkdir(parents=True)
        gt = Image.fromarray(blob().astype(np.uint8) * 255, "L")
        gt.save(tmp_path / split / "masks" / f"{split}_a-gt.png")
    ds = load_dataset(tmp_path, mask_pattern="{stem}-gt.png")
    assert ds.format == "masks"
    assert [s.name for s in ds.samples] == ["train/images/train_a.png", "val/images/val_a.png"]


def assert_same(first, second) -> None:
    assert second.class_names == first.class_names
    index = first.class_map.index()
    for a, b in zip(first.samples, second.samples, strict=True):
        assert np.array_equal(semantic_mask(a, index), semantic_mask(b, index))
        ma, la, _ = instance_masks(a, index)
        mb, lb, _ = instance_masks(b, index)
        assert la.tolist() == lb.tolist() and np.array_equal(ma, mb)


@pytest.mark.parametrize("kind", ["index", "color", "binary"])
def test_round_trip_each_kind(tmp_path: Path, kind: str) -> None:
    if kind == "binary":
        first = load_dataset(write_carvana(tmp_path / "src"), class_name="car")
    elif kind == "color":
        first = load_dataset(write_colour(tmp_path / "src"))
    else:
        first = load_dataset(write_index(tmp_path / "src"))
    masks.write(first, tmp_path / "out", kind=kind)
    out = tmp_path / "out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert all(p.startswith(("images/", "masks/")) or p in ("classes.txt", "classes.csv", OutputFolder.MANIFEST)
               for p in written)
    # no temporary files left; the one hidden file is the list of what masksmith wrote
    assert [p.name for p in out.rglob(".*")] == [OutputFolder.MANIFEST]
    second = load_dataset(out)
    assert_same(first, second)
    if kind == "color":
        assert [c.color for c in second.classes] == [c.color for c in first.classes]
        assert "__ignore__" not in (out / "classes.csv").read_text()


def test_writer_refusals(tmp_path: Path) -> None:
    ds = load_dataset(write_index(tmp_path / "src"))
    with pytest.raises(OutputError, match="lies inside, the input"):
        masks.write(ds, tmp_path / "src" / "out")
    with pytest.raises(DatasetError, match="binary masks hold one class"):
        masks.write(ds, tmp_path / "out", kind="binary")
    ds.classes[1].color = ds.classes[0].color
    with pytest.raises(DatasetError, match="share the colour"):
        masks.write(ds, tmp_path / "out2", kind="color")


# ---------------------------------------------------------------- public benchmark layouts, as published

def write_drive(root: Path) -> Path:
    """DRIVE's layout: training/images/21_training.tif, training/1st_manual/21_manual1.gif (the vessels),
    training/mask/21_training_mask.gif (the field of view); the same under test/."""
    for split, numbers in (("training", (21, 22)), ("test", (1,))):
        for n in numbers:
            stem = f"{n:02d}_{split}" if split == "test" else f"{n}_{split}"
            photo(root / split / "images" / f"{stem}.tif")
            vessels, fov = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
            vessels[10:12, :] = 255
            fov[5:45, 5:60] = 255
            (root / split / "1st_manual").mkdir(parents=True, exist_ok=True)
            (root / split / "mask").mkdir(parents=True, exist_ok=True)
            Image.fromarray(vessels, "L").save(root / split / "1st_manual" / f"{n:02d}_manual1.gif")
            Image.fromarray(fov, "L").save(root / split / "mask" / f"{stem}_mask.gif")
    return root


def test_several_mask_folders_stop_and_list_them(tmp_path: Path) -> None:
    root = write_drive(tmp_path / "DRIVE")
    with pytest.raises(DatasetError, match=r"several folders of masks .*1st_manual/ \(\d files\), mask/ \(\d files\)"
                       r".*masksmith does not pick one") as info:
        load_dataset(root)
    assert "`masks=" in str(info.value)
    ds = load_dataset(root, masks="1st_manual", mask_pattern="{number}_manual1.gif")
    assert [(s.name, s.split) for s in ds.samples] == [
        ("test/images/01_test.tif", "test"), ("training/images/21_training.tif", "train"),
        ("training/images/22_training.tif", "train")]
    assert semantic_mask(ds.samples[1], ds.class_map.index())[11, 30] == 1
    assert ds.info["folders"] == [("test/images", "test/1st_manual"), ("training/images", "training/1st_manual")]
    # pointing at one mask folder uses that one
    fov = load_dataset(root / "training" / "mask")
    assert [s.name for s in fov.samples] == ["images/21_training.tif", "images/22_training.tif"]
    assert semantic_mask(fov.samples[0], fov.class_map.index())[11, 30] == 1  # the field of view
    assert semantic_mask(fov.samples[0], fov.class_map.index())[2, 2] == 0
    # and so does one mask file
    assert len(load_dataset(root / "training" / "mask" / "21_training_mask.gif").samples) == 2


def write_camvid(root: Path, void: int = 11) -> Path:
    """SegNet's CamVid: train/ trainannot/ val/ valannot/ test/ testannot/, index PNGs 0..11, 11 unlabelled."""
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        for k in range(count):
            photo(root / split / f"0001TP_{split}{k:03d}.png")
            lab = np.zeros((H, W), np.uint8)
            for c in range(void):
                lab[:, c * 5: c * 5 + 5] = c
            lab[0, 0] = void  # unlabelled: a few pixels, the top value
            (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
            Image.fromarray(lab, "L").save(root / f"{split}annot" / f"0001TP_{split}{k:03d}.png")
    return root


def test_a_split_folder_is_that_split_alone(tmp_path: Path) -> None:
    root = write_camvid(tmp_path / "CamVid")
    whole = load_dataset(root)
    assert sorted({s.split for s in whole.samples}) == ["test", "train", "val"] and len(whole.samples) == 6
    for where in (root / "train", root / "trainannot", root / "train" / "0001TP_train000.png"):
        part = load_dataset(where)
        assert {s.split for s in part.samples} == {"train"} and len(part.samples) == 3, where
    nested = tmp_path / "nested"
    for split in ("train", "val"):
        photo(nested / "images" / split / f"{split}_0.png")
        (nested / "masks" / split).mkdir(parents=True)
        Image.fromarray(blob().astype(np.uint8) * 255, "L").save(nested / "masks" / split / f"{split}_0.png")
    assert [(s.name, s.split) for s in load_dataset(nested).samples] == [("images/train/train_0.png", "train"),
                                                                        ("images/val/val_0.png", "val")]
    assert [s.name for s in load_dataset(nested / "images" / "val").samples] == ["images/val/val_0.png"]


def test_index_values_are_listed_with_void_and_naming_hints(tmp_path: Path) -> None:
    from masksmith.data.stats import dataset_stats

    root = write_camvid(tmp_path / "CamVid")
    stats = dataset_stats(load_dataset(root / "train"))
    assert [v for v, _, _ in stats.mask_values] == list(range(12))
    assert stats.mask_values[0][1] == "_background_" and stats.mask_values[11][1] == "class_11"
    hints = " ".join(stats.hints)
    assert "value 11 (class_11" in hints and "the highest value and far rarer than the others" in hints
    assert "`ignore_value=11`" in hints and "classes.txt" in hints and "value 0 is read as background" in hints
    ds = load_dataset(root / "train", ignore_value=11)
    assert len(ds.class_names) == 10 and ds.samples[0].ignore_rle is not None
    # index 0 carries the user's name: it is a class like the others, not background
    names = ["sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian",
             "bicyclist", "unlabelled"]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    named = load_dataset(root / "train")
    assert named.class_names == names
    assert semantic_mask(named.samples[0], named.class_map.index())[5, 2] == named.class_map.index()["sky"]
    assert any("named 'unlabelled', which sounds like void" in h for h in dataset_stats(named).hints)


def test_blurred_binary_masks_are_detected_and_thresholded(tmp_path: Path) -> None:
    """Binary masks resized with smoothing: greyscale with 250+ levels, most pixels near black or white."""
    for k in range(2):
        photo(tmp_path / "images" / f"cell_{k}.png")
        (tmp_path / "masks").mkdir(exist_ok=True)
        sharp = Image.fromarray(blob(k).astype(np.uint8) * 255, "L").resize((W * 4, H * 4), Image.NEAREST)
        blurred = sharp.filter(ImageFilter.GaussianBlur(6)).resize((W, H), Image.BILINEAR)
        ramp = np.asarray(blurred).copy()
        ramp[0, :] = np.linspace(0, 255, W).astype(np.uint8)  # every grey level somewhere
        ramp[1, :] = np.linspace(255, 0, W).astype(np.uint8)
        ramp[2, :] = (np.arange(W) * 4 + 1) % 256
        Image.fromarray(ramp, "L").save(tmp_path / "masks" / f"cell_{k}.png")
    with pytest.raises(DatasetError, match=r"holds \d{2,3} grey levels, most pixels near black or white") as info:
        load_dataset(tmp_path)
    assert "`threshold=128`" in str(info.value)
    ds = load_dataset(tmp_path, threshold=128)
    assert ds.class_names == ["foreground"]
    m = semantic_mask(ds.samples[0], ds.class_map.index())
    assert m[20, 15] == 1 and m[40, 10] == 0


def test_git_lfs_pointer_images_say_so(tmp_path: Path) -> None:
    write_binary(tmp_path, n=2)
    (tmp_path / "images" / "cell_001.png").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 12345\n")
    with pytest.raises(DatasetError, match="1 of 2 image.* is a Git LFS pointer file, not the image.*git lfs pull"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, need_pixels=False)
    assert "Git LFS pointer" in str(ds.problems[0]) and len(ds.samples) == 2
    (tmp_path / "masks" / "cell_000.png").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:1\n")
    with pytest.raises(DatasetError, match="cell_000.png: is a Git LFS pointer, not the mask itself"):
        load_dataset(tmp_path, mask_kind="binary")


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

def mask_options(root: Path) -> st.SearchStrategy[dict]:
    values = st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=4)
    return st.fixed_dictionaries({}, optional={
        "mask_kind": st.sampled_from([None, "binary", "index", "color", "x"]),
        "color_map": st.sampled_from([{"road": ROAD}, {"road": "#804080", "car": [0, 0, 142]}, {"x": "red"}, {}]),
        "masks": st.sampled_from(["masks", "labels", "mask", "1st_manual", "nope", "../x", ""]),
        "threshold": st.one_of(st.integers(-1, 300), st.sampled_from([None, "x", 1.5])),
        "class_names": st.one_of(st.sampled_from(["a,b", ["road", "car"], {"0": "sky", "1": "road"}, {"x": 1}, [],
                                                  {"300": "a"}]), values, st.lists(values, max_size=3)),
        "class_name": st.sampled_from(["cell", "", None]),
        "ignore_value": st.sampled_from([None, 0, 3, 255, 300, "x"]),
        "mask_pattern": st.sampled_from(["{number}_manual1.png", "{stem}.png", "{stem}_mask.png", "{bad}", "plain",
                                         ["{stem}.png", "{name}"]])})


# the folders and names public data sets and people's copies use
FOLDERS = ["images", "train", "trainannot", "masks", "mask", "labels", "1st_manual", "test", "val", "valannot",
           "images/train", "masks/train"]
NAMES_OF_MASKS = ["a.png", "a_mask.png", "1_manual1.png", "cell_000.png", "street_0.png", "frame_0.png"]
MOVES = tuple(f"{folder}/{name}" for folder in FOLDERS for name in NAMES_OF_MASKS)
MASK_POINTS = ("", "images", "masks", "labels", "train", "trainannot", "images/train", "masks/train/a.png")
FUZZ_EXAMPLES = [
    Example("index masks", lambda root: write_index(root), files=("labels/street_0.png", "labels/street_1.png",
                                                                  "classes.txt", "images/street_0.jpg"),
            points=MASK_POINTS, options=mask_options, values=st.sampled_from(["road", "car", "255", "", "a b"]),
            moves=MOVES),
    Example("binary masks", lambda root: write_binary(root, 2), files=("masks/cell_000.png", "masks/cell_001.png"),
            points=MASK_POINTS, options=mask_options, moves=MOVES),
    Example("colour masks", lambda root: write_colour(root), files=("masks/frame_0.png", "classes.csv"),
            points=MASK_POINTS, options=mask_options, values=st.sampled_from(["128", "road", "#804080", "-1", ""]),
            moves=MOVES),
]
