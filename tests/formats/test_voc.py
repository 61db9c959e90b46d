"""Pascal VOC segmentation folders: the VOC2012 layout (palette PNGs, void borders, instance ids), CVAT's
"Segmentation mask 1.1" export (RGB masks + labelmap.txt), writing and reading back, and broken masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import Example
from hypothesis import strategies as st
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.core.labels import voc_color, voc_palette
from masksmith.core.outputs import OutputError
from masksmith.data import load_dataset
from masksmith.data.formats import voc
from masksmith.data.rasterize import instance_masks, semantic_mask

W, H = 64, 48
AEROPLANE, PERSON = 1, 15  # VOC class indices

DETECTION_XML = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>{id}.jpg</filename>
\t<source><database>The VOC2007 Database</database><annotation>PASCAL VOC2007</annotation></source>
\t<size><width>64</width><height>48</height><depth>3</depth></size>
\t<segmented>1</segmented>
\t<object><name>aeroplane</name><pose>Frontal</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>
</annotation>
"""


def scene(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Class and object masks of one photo: an aeroplane and two persons, each outlined in void (255)."""
    cls = np.zeros((H, W), np.uint8)
    obj = np.zeros((H, W), np.uint8)
    boxes = [(AEROPLANE, (5, 20, 5, 30 + k)), (PERSON, (25, 40, 35, 55)), (PERSON, (25, 40, 10, 25))]
    for oid, (c, (y0, y1, x0, x1)) in enumerate(boxes, start=1):
        cls[y0:y1, x0:x1] = c
        obj[y0:y1, x0:x1] = oid
    for _, (y0, y1, x0, x1) in boxes:
        for arr in (cls, obj):
            arr[y0 - 1, x0 - 1:x1 + 1] = arr[y1, x0 - 1:x1 + 1] = 255
            arr[y0 - 1:y1 + 1, x0 - 1] = arr[y0 - 1:y1 + 1, x1] = 255
    return cls, obj


def save_palette(values: np.ndarray, path: Path) -> None:
    im = Image.fromarray(values, "P")
    im.putpalette(voc_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def write_voc2012(top: Path, objects: bool = True) -> Path:
    """VOCdevkit/VOC2012 as the VOC2012 trainval tar unpacks: JPEGImages, palette PNG masks with 255 borders,
    ImageSets/Segmentation/{train,val,trainval}.txt, plus the detection files a real copy has."""
    root = top / "VOCdevkit" / "VOC2012"
    ids = ["2007_000032", "2007_000039", "2007_000063"]
    for k, image_id in enumerate(ids):
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (120, 100 + k, 90)).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        cls, obj = scene(k)
        save_palette(cls, root / "SegmentationClass" / f"{image_id}.png")
        if objects:
            save_palette(obj, root / "SegmentationObject" / f"{image_id}.png")
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(DETECTION_XML.format(id=image_id))
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text(f"{ids[0]}\n{ids[2]}\n")
    (lists / "val.txt").write_text(f"{ids[1]}\n")
    (lists / "trainval.txt").write_text("\n".join(ids) + "\n")
    (root / "ImageSets" / "Main").mkdir()
    (root / "ImageSets" / "Main" / "aeroplane_train.txt").write_text(f"{ids[0]}  1\n{ids[2]} -1\n")
    return root


def test_reads_voc2012_with_instances_and_void(tmp_path: Path) -> None:
    root = write_voc2012(tmp_path)
    ds = load_dataset(tmp_path / "VOCdevkit")
    assert ds.format == "voc"
    assert ds.class_names == list(voc.VOC_CLASSES) and ds.class_names[0] == "aeroplane"
    assert ds.classes[PERSON - 1].color == voc_color(PERSON)
    assert [s.name for s in ds.samples] == ["JPEGImages/2007_000032.jpg", "JPEGImages/2007_000039.jpg",
                                            "JPEGImages/2007_000063.jpg"]
    sample = ds.samples[0]
    assert [(r.label, r.is_instance) for r in sample.regions] == [("aeroplane", True), ("person", True),
                                                                   ("person", True)]
    cls, obj = scene(0)
    index = ds.class_map.index()
    assert index["person"] == PERSON
    assert np.array_equal(semantic_mask(sample, index), cls)  # void borders come back as 255
    masks, labels, _ = instance_masks(sample, index)
    assert labels.tolist() == [AEROPLANE, PERSON, PERSON]
    for k in range(3):
        assert np.array_equal(masks[k], obj == k + 1)
    assert sample.image_path == root / "JPEGImages" / "2007_000032.jpg"


def test_without_object_masks_gives_class_regions(tmp_path: Path) -> None:
    write_voc2012(tmp_path, objects=False)
    ds = load_dataset(tmp_path / "VOCdevkit" / "VOC2012")
    sample = ds.samples[0]
    assert [(r.label, r.is_instance) for r in sample.regions] == [("aeroplane", False), ("person", False)]
    _, labels, _ = instance_masks(sample, ds.class_map.index())
    assert labels.tolist() == [AEROPLANE, PERSON, PERSON]  # the two persons are two connected parts


def test_a_list_file_reads_only_its_ids(tmp_path: Path) -> None:
    root = write_voc2012(tmp_path)
    ds = load_dataset(root / "ImageSets" / "Segmentation" / "val.txt")
    assert ds.format == "voc" and [s.name for s in ds.samples] == ["JPEGImages/2007_000039.jpg"]


def write_cvat_export(root: Path, stray: tuple[int, int, int] | None = None) -> Path:
    """CVAT's 'Segmentation mask 1.1' export: RGB masks in the labelmap colours, instance colours from the
    VOC palette, ImageSets/Segmentation/default.txt."""
    colors = {"car": (250, 50, 83), "road": (140, 120, 240), "sign": (255, 204, 51)}
    root.mkdir(parents=True)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                       + "".join(f"{n}:{r},{g},{b}::\n" for n, (r, g, b) in colors.items()))
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    cls = np.zeros((H, W, 3), np.uint8)
    obj = np.zeros((H, W, 3), np.uint8)
    cls[30:48, :] = colors["road"]
    obj[30:48, :] = voc_color(1)
    cls[10:35, 20:40] = colors["car"]  # the car stands on the road, in front of it
    obj[10:35, 20:40] = voc_color(2)
    if stray is not None:
        cls[0:2, 0:2] = stray
    Image.fromarray(cls, "RGB").save(root / "SegmentationClass" / "street_01.png")
    Image.fromarray(obj, "RGB").save(root / "SegmentationObject" / "street_01.png")
    Image.new("RGB", (W, H), (10, 20, 30)).save(root / "JPEGImages" / "street_01.jpg")
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("street_01\n")
    return root


def test_reads_cvat_segmentation_mask_export(tmp_path: Path) -> None:
    write_cvat_export(tmp_path / "task_12-2024_03_06")
    ds = load_dataset(tmp_path)  # the unzipped export's top folder sits one level down
    assert ds.format == "voc"
    assert ds.class_names == ["car", "road", "sign"]  # 'sign' has no pixels but is declared
    assert ds.classes[1].color == (140, 120, 240)
    sample = ds.samples[0]
    assert [(r.label, r.is_instance) for r in sample.regions] == [("road", True), ("car", True)]
    index = ds.class_map.index()
    sem = semantic_mask(sample, index)
    assert sem[32, 30] == index["car"] and sem[40, 5] == index["road"] and sem[5, 5] == 0
    masks, labels, _ = instance_masks(sample, index)
    assert labels.tolist() == [index["road"], index["car"]]
    assert masks[0].sum() == 18 * 64 - 5 * 20  # the road minus what the car covers


def test_unknown_colour_is_named(tmp_path: Path) -> None:
    root = write_cvat_export(tmp_path / "export", stray=(7, 200, 7))
    with pytest.raises(DatasetError, match=r"colour \(7, 200, 7\) #07c807 in 4 px") as err:
        load_dataset(root)
    assert "SegmentationClass/street_01.png" in str(err.value) and "labelmap.txt" in str(err.value)


def test_round_trip_keeps_classes_masks_and_instances(tmp_path: Path) -> None:
    write_voc2012(tmp_path / "src")
    first = load_dataset(tmp_path / "src")
    voc.write(first, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "SegmentationObject" / "2007_000032.png").is_file()
    assert (out / "ImageSets" / "Segmentation" / "default.txt").read_text().split() == [
        "2007_000032", "2007_000039", "2007_000063"]
    assert "person:192,128,128::" in (out / "labelmap.txt").read_text()
    with Image.open(out / "SegmentationClass" / "2007_000032.png") as im:
        assert im.mode == "P" and im.getpalette()[3 * PERSON: 3 * PERSON + 3] == list(voc_color(PERSON))
    second = load_dataset(out)
    assert second.class_names == first.class_names
    assert [c.color for c in second.classes] == [c.color for c in first.classes]
    index = first.class_map.index()
    for a, b in zip(first.samples, second.samples, strict=True):
        assert a.name == b.name
        assert np.array_equal(semantic_mask(a, index), semantic_mask(b, index))
        ma, la, _ = instance_masks(a, index)
        mb, lb, _ = instance_masks(b, index)
        assert la.tolist() == lb.tolist() and np.array_equal(ma, mb)


def test_round_trip_of_class_only_masks_and_custom_classes(tmp_path: Path) -> None:
    root = write_cvat_export(tmp_path / "src")
    (root / "SegmentationObject" / "street_01.png").unlink()
    first = load_dataset(root)
    voc.write(first, tmp_path / "out")
    assert not (tmp_path / "out" / "SegmentationObject").exists()
    second = load_dataset(tmp_path / "out")
    assert second.class_names == ["car", "road", "sign"]
    assert [c.color for c in second.classes] == [c.color for c in first.classes]
    index = first.class_map.index()
    assert np.array_equal(semantic_mask(first.samples[0], index), semantic_mask(second.samples[0], index))
    assert all(not r.is_instance for r in second.samples[0].regions)


def test_writer_refuses_the_source_folder(tmp_path: Path) -> None:
    root = write_voc2012(tmp_path)
    ds = load_dataset(root)
    for target in (root, root / "converted"):
        with pytest.raises(OutputError, match="lies inside, the input"):
            voc.write(ds, target)


def test_bad_masks_strict_and_lenient(tmp_path: Path) -> None:
    root = write_voc2012(tmp_path)
    cls, _ = scene(1)
    cls[0, 0] = 30  # an index no class has
    save_palette(cls, root / "SegmentationClass" / "2007_000039.png")
    (root / "SegmentationClass" / "2007_000063.png").unlink()
    with pytest.raises(DatasetError, match="class index 30, but only 20 classes are declared"):
        load_dataset(root)
    ds = load_dataset(root, strict=False)
    assert [s.name for s in ds.samples] == ["JPEGImages/2007_000032.jpg"]
    text = "\n".join(str(p) for p in ds.problems)
    assert "2007_000039" in text and "has no class mask SegmentationClass/2007_000063.png" in text


def test_mask_size_mismatch_gives_both_sizes(tmp_path: Path) -> None:
    root = write_voc2012(tmp_path, objects=False)
    cls, _ = scene(0)
    save_palette(np.ascontiguousarray(cls[:24, :32]), root / "SegmentationClass" / "2007_000032.png")
    with pytest.raises(DatasetError, match="its mask is 32x24 but the image is 64x48"):
        load_dataset(root)


# ---------------------------------------------------------------- where the user points, what else lies there

def test_one_png_finds_the_data_set_and_lists_give_the_splits(tmp_path: Path) -> None:
    root = write_voc2012(tmp_path)
    ds = load_dataset(root / "SegmentationClass" / "2007_000039.png")
    assert ds.format == "voc" and ds.root == root and len(ds.samples) == 3
    assert [(s.name, s.split) for s in ds.samples] == [("JPEGImages/2007_000032.jpg", "train"),
                                                       ("JPEGImages/2007_000039.jpg", "val"),
                                                       ("JPEGImages/2007_000063.jpg", "train")]


def test_the_folders_own_layout_wins_and_the_other_is_named(tmp_path: Path) -> None:
    """A VOC data set that also holds LabelMe JSON in a sub-folder (the annotations it was made from)."""
    root = write_voc2012(tmp_path)
    (root / "labelme").mkdir()
    Image.new("RGB", (W, H)).save(root / "labelme" / "a.jpg")
    (root / "labelme" / "a.json").write_text(
        '{"version": "5.2.1", "flags": {}, "shapes": [], "imagePath": "a.jpg", "imageData": null, '
        '"imageHeight": 48, "imageWidth": 64}')
    ds = load_dataset(root)
    assert ds.format == "voc"
    (note,) = [n for n in ds.notes if "also holds" in str(n)]
    assert "labelme" in str(note) and "-f labelme" in str(note)
    assert load_dataset(root, "labelme").format == "labelme"


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

def write_one(root: Path) -> None:
    """One photo of VOC 2012's layout, with its class and object masks, its list and a labelmap."""
    cls, obj = scene(0)
    save_palette(cls, root / "SegmentationClass" / "a.png")
    save_palette(obj, root / "SegmentationObject" / "a.png")
    (root / "JPEGImages").mkdir()
    Image.new("RGB", (W, H)).save(root / "JPEGImages" / "a.jpg")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n")


VOC_FILES = ("SegmentationClass/a.png", "SegmentationObject/a.png", "JPEGImages/a.jpg",
             "ImageSets/Segmentation/train.txt")
CVAT_EXPORT = ("labelmap.txt", "SegmentationClass/street_01.png", "SegmentationObject/street_01.png",
               "ImageSets/Segmentation/default.txt")
VOC_OPTIONS = st.fixed_dictionaries({}, optional={"class_names": st.sampled_from([["plane", "person"], "a,b", [],
                                                                                  {"1": "x"}, None])})
FUZZ_EXAMPLES = [
    Example("VOC 2012", write_one, files=VOC_FILES, points=("", *VOC_FILES, "other/x.png"),
            options=lambda root: VOC_OPTIONS, values=st.sampled_from(["a", "x", " a ", "../a", "a.jpg", ""]),
            moves=("other/x.png", "SegmentationClass/b.png", "labelmap.txt", "JPEGImages/b.jpg",
                   "ImageSets/Segmentation/val.txt")),
    Example("CVAT mask export", lambda root: write_cvat_export(root / "export"),
            files=tuple(f"export/{f}" for f in CVAT_EXPORT), points=("export", "export/labelmap.txt"),
            options=lambda root: VOC_OPTIONS,
            values=st.sampled_from(["car:250,50,83::", "background:0,0,0::", "x:1,2::", "# label:color_rgb", "a:"]),
            moves=("export/SegmentationClass/street_02.png", "export/JPEGImages/street_01.png")),
]
