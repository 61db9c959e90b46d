"""CVAT for images 1.1 XML: a task export as CVAT writes it (meta, labels with colours, every shape kind),
a project export, the mask RLE, z-order, and broken or hostile files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import NAMES, Example
from hypothesis import strategies as st
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.data import load_dataset
from masksmith.data.formats import cvat
from masksmith.data.rasterize import instance_masks, semantic_mask

W, H = 64, 48

META = """
  <meta>
    <task>
      <id>12</id>
      <name>street scenes</name>
      <size>3</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <bugtracker></bugtracker>
      <created>2024-03-05 10:12:44.123456+00:00</created>
      <updated>2024-03-06 08:01:02.654321+00:00</updated>
      <subset>default</subset>
      <start_frame>0</start_frame>
      <stop_frame>2</stop_frame>
      <frame_filter></frame_filter>
      <segments>
        <segment>
          <id>31</id>
          <start>0</start>
          <stop>2</stop>
          <url>https://app.cvat.ai/api/jobs/31</url>
        </segment>
      </segments>
      <owner>
        <username>annotator</username>
        <email>annotator@example.com</email>
      </owner>
      <assignee></assignee>
      <labels>
        <label>
          <name>car</name>
          <color>#fa3253</color>
          <type>any</type>
          <attributes>
            <attribute>
              <name>model</name>
              <mutable>False</mutable>
              <input_type>select</input_type>
              <default_value>sedan</default_value>
              <values>sedan
suv</values>
            </attribute>
          </attributes>
        </label>
        <label>
          <name>person</name>
          <color>#66ff66</color>
          <type>rectangle</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>road</name>
          <color>#8c78f0</color>
          <type>mask</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>plate</name>
          <color>#ffcc33</color>
          <type>polygon</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>lane</name>
          <color>#33ddff</color>
          <type>polyline</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>s1</name>
          <color>#b83df5</color>
          <type>skeleton</type>
          <attributes>
          </attributes>
          <svg>&lt;circle r="1.5" cx="25.1" cy="22.6" data-node-id="1"&gt;&lt;/circle&gt;</svg>
        </label>
        <label>
          <name>1</name>
          <color>#d12345</color>
          <type>points</type>
          <attributes>
          </attributes>
          <parent>s1</parent>
        </label>
      </labels>
    </task>
    <dumped>2024-03-06 08:05:11.000001+00:00</dumped>
  </meta>"""

IMAGE_0 = """
  <image id="0" name="frame_000000.png" width="64" height="48">
    <polygon label="car" source="manual" occluded="0" points="10.00,10.00;40.00,10.00;40.00,30.00;10.00,30.00"
      z_order="1">
      <attribute name="model">suv</attribute>
    </polygon>
    <box label="person" source="manual" occluded="1" xtl="30.00" ytl="20.00" xbr="50.00" ybr="40.00"
      z_order="0">
    </box>
    <mask label="road" source="manual" occluded="0" rle="1, 2, 3, 2" left="2" top="40" width="4" height="2"
      z_order="2">
    </mask>
    <polyline label="lane" source="manual" occluded="0" points="0.00,47.00;63.00,47.00" z_order="0">
    </polyline>
    <points label="car" source="manual" occluded="0" points="12.00,12.00" z_order="0">
    </points>
    <tag label="car" source="manual">
    </tag>
    <skeleton label="s1" source="manual" z_order="0">
      <points label="1" source="manual" outside="0" occluded="0" points="5.00,5.00">
      </points>
    </skeleton>
  </image>"""

IMAGE_1 = """
  <image id="1" name="frame_000001.png" width="64" height="48">
    <ellipse label="plate" source="manual" occluded="0" cx="32.00" cy="24.00" rx="10.00" ry="5.00"
      rotation="90.0" z_order="0">
    </ellipse>
    <box label="car" source="auto" occluded="0" xtl="5.00" ytl="5.00" xbr="15.00" ybr="9.00" rotation="90.0"
      z_order="0">
    </box>
  </image>"""

IMAGE_2 = """
  <image id="2" name="night/frame_000002.png" width="64" height="48">
  </image>"""


def write_task(root: Path, *images: str, meta: str = META) -> Path:
    """A CVAT 'CVAT for images 1.1' task export: annotations.xml and images/ (names may hold sub-folders)."""
    for name in ("frame_000000.png", "frame_000001.png", "night/frame_000002.png"):
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (40, 60, 80)).save(root / "images" / name)
    body = "".join(images) if images else IMAGE_0 + IMAGE_1 + IMAGE_2
    path = root / "annotations.xml"
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>{meta}'
                    f"{body}\n</annotations>\n", encoding="utf-8")
    return path


def test_reads_task_export(tmp_path: Path) -> None:
    write_task(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.format == "cvat"
    # labels without shapes stay; skeletons, their points and polyline-only labels have no area
    assert ds.class_names == ["car", "person", "road", "plate"]
    assert ds.classes[0].color == (0xFA, 0x32, 0x53)
    assert [s.name for s in ds.samples] == ["frame_000000.png", "frame_000001.png", "night/frame_000002.png"]
    first = ds.samples[0]
    # sorted by z_order: person (0) under car (1) under road (2); polyline/points/tag/skeleton skipped
    assert [r.label for r in first.regions] == ["person", "car", "road"]
    assert first.regions[1].attributes["model"] == "suv"
    assert first.regions[0].attributes["occluded"] is True
    assert ds.samples[2].regions == []


def test_masks_at_known_pixels(tmp_path: Path) -> None:
    write_task(tmp_path)
    ds = load_dataset(tmp_path / "annotations.xml")
    index = ds.class_map.index()
    sem = semantic_mask(ds.samples[0], index)
    assert sem[25, 35] == index["car"]  # the overlap: car's z_order is higher though the box comes later
    assert sem[35, 45] == index["person"]
    assert sem[5, 5] == 0
    # rle "1, 2, 3, 2" over a 4x2 box at (2, 40): row 40 -> 0 1 1 0, row 41 -> 0 0 1 1
    road = np.argwhere(sem == index["road"])
    assert sorted(map(tuple, road.tolist())) == [(40, 3), (40, 4), (41, 4), (41, 5)]
    masks, labels, _ = instance_masks(ds.samples[0], index)
    assert labels.tolist() == [index["person"], index["car"], index["road"]]
    assert masks[1].sum() == 30 * 20

    sem1 = semantic_mask(ds.samples[1], index)
    # the ellipse turned by 90 degrees stands upright: 5 px wide, 10 px tall
    assert sem1[24 + 8, 32] == index["plate"] and sem1[24, 32 + 8] == 0
    # the 10x4 box turned by 90 degrees about its centre (10, 7) covers x 8..12, y 2..12
    assert sem1[3, 10] == index["car"] and sem1[7, 6] == 0


def test_grouped_polygons_are_one_object(tmp_path: Path) -> None:
    image = """
  <image id="0" name="frame_000000.png" width="64" height="48">
    <polygon label="car" source="manual" occluded="1" points="2,2;10,2;10,10;2,10" z_order="0" group_id="3">
    </polygon>
    <polygon label="person" source="manual" occluded="0" points="11,0;14,0;14,20;11,20" z_order="0">
    </polygon>
    <polygon label="car" source="manual" occluded="1" points="16,2;24,2;24,10;16,10" z_order="0" group_id="3">
    </polygon>
  </image>"""
    write_task(tmp_path, image)
    ds = load_dataset(tmp_path)
    regions = ds.samples[0].regions
    assert [(r.label, len(r.polygons)) for r in regions] == [("car", 2), ("person", 1)]
    masks, labels, _ = instance_masks(ds.samples[0], ds.class_map.index())
    assert labels.tolist() == [1, 2] and masks[0].sum() == 2 * 8 * 8


def test_cvat_rle_decoding_by_hand() -> None:
    # the example of CVAT's XML format page: a 13x15 disc
    counts = [3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3]
    disc = cvat.decode_rle(counts, 13, 15)
    assert disc.shape == (15, 13) and disc.sum() == sum(counts[1::2])
    assert disc[0].tolist() == [False] * 3 + [True] * 5 + [False] * 5  # row-major, 0s first
    assert disc[7].all() and disc[8].all()
    assert cvat.decode_rle([0, 4], 2, 2).all()  # a mask starting with 1s begins with a 0-length run
    with pytest.raises(DatasetError, match="covers 5 pixels"):
        cvat.decode_rle([1, 4], 2, 2)


def test_project_export_with_subsets(tmp_path: Path) -> None:
    meta = """
  <meta>
    <project>
      <id>3</id>
      <name>roads</name>
      <created>2024-01-01 00:00:00+00:00</created>
      <updated>2024-01-02 00:00:00+00:00</updated>
      <labels>
        <label><name>road</name><color>#8c78f0</color><type>any</type><attributes></attributes></label>
        <label><name>car</name><color>#fa3253</color><type>any</type><attributes></attributes></label>
      </labels>
      <subsets>Train
Validation</subsets>
    </project>
    <dumped>2024-01-03 00:00:00+00:00</dumped>
  </meta>"""
    image = """
  <image id="0" name="a.jpg" subset="Train" task_id="7" width="64" height="48">
    <polygon label="car" source="manual" occluded="0" points="1,1;20,1;20,20" z_order="0"></polygon>
  </image>"""
    write_task(tmp_path, image, meta=meta)
    (tmp_path / "images" / "Train").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "Train" / "a.jpg")
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["road", "car"]
    assert ds.samples[0].image_path == tmp_path / "images" / "Train" / "a.jpg"


def test_broken_xml_names_the_file_and_place(tmp_path: Path) -> None:
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace("</polygon>", "</polygn>", 1))
    with pytest.raises(DatasetError, match=r"annotations\.xml: is not well-formed XML \(line \d+") as err:
        load_dataset(tmp_path)
    assert "Fix:" in str(err.value)


def test_entity_declarations_are_refused(tmp_path: Path) -> None:
    write_task(tmp_path)
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE annotations [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
            "<annotations><version>1.1</version><meta><task><labels><label><name>&c;</name></label></labels>"
            "</task></meta></annotations>")
    (tmp_path / "annotations.xml").write_text(bomb)
    with pytest.raises(DatasetError, match="DOCTYPE or entities"):
        load_dataset(tmp_path / "annotations.xml")


def test_bad_shape_strict_raises_lenient_drops_it_alone(tmp_path: Path) -> None:
    bad = IMAGE_1.replace('cx="32.00"', 'cx="abc"')
    write_task(tmp_path, IMAGE_0, bad, IMAGE_2)
    with pytest.raises(DatasetError, match="frame_000001.png, ellipse 1 .plate.: cx is 'abc'"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, strict=False)
    assert [s.name for s in ds.samples] == ["frame_000000.png", "frame_000001.png", "night/frame_000002.png"]
    assert [r.label for r in ds.samples[1].regions] == ["car"]  # the box stays, the broken ellipse goes
    assert len(ds.problems) == 1 and "cx is 'abc'" in str(ds.problems[0]) and ds.problems[0].dropped == "region"


def test_mask_outside_image_and_bad_rle_are_problems(tmp_path: Path) -> None:
    outside = IMAGE_0.replace('left="2" top="40"', 'left="62" top="40"')
    short = IMAGE_1.replace("</image>", '<mask label="road" rle="1, 2" left="0" top="0" width="4" height="2"'
                                        ' z_order="0"></mask></image>')
    write_task(tmp_path, outside, short)
    ds = load_dataset(tmp_path, strict=False)
    assert [[r.label for r in s.regions] for s in ds.samples] == [["person", "car"], ["plate", "car"]]
    text = " ".join(str(p) for p in ds.problems)
    assert "mask box (left 62, top 40, 4x2) does not lie inside the 64x48 image" in text
    assert "covers 3 pixels, but its box is 4x2 = 8" in text


def test_undeclared_label_is_reported_by_the_shared_checks(tmp_path: Path) -> None:
    write_task(tmp_path, IMAGE_0.replace('label="car" source="manual" occluded="0" points="10', 'label="bus" '
                                         'source="manual" occluded="0" points="10'))
    ds = load_dataset(tmp_path, strict=False)
    assert "class 'bus' is not declared" in str(ds.problems[0])
    (one,) = ds.samples
    assert [r.label for r in one.regions] == ["person", "road"]
    assert semantic_mask(one, ds.class_map.index())[15, 15] == 255  # the bus's pixels are void, not background


def test_video_export_is_refused_with_advice(tmp_path: Path) -> None:
    track = ('\n  <track id="0" label="car" source="manual"><box frame="0" keyframe="1" outside="0" '
             'occluded="0" xtl="1" ytl="1" xbr="9" ybr="9" z_order="0"></box></track>')
    write_task(tmp_path, track)
    with pytest.raises(DatasetError, match="CVAT for video"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------- skips reported, video refused, subsets apart

def test_shapes_without_area_are_reported(tmp_path: Path) -> None:
    write_task(tmp_path)
    ds = load_dataset(tmp_path)
    skipped = {str(n).split(" ")[1]: n.count for n in ds.notes if n.skipped}
    assert skipped == {"polyline,": 3, "tag(s)": 1}  # a polyline, a points, a skeleton; and the tag
    assert ds.samples[0].skipped == 4


def test_video_task_without_tracks_is_refused_not_read_as_nothing(tmp_path: Path) -> None:
    """A 'CVAT for video' export of a task with no tracks yet: only the meta, mode interpolation."""
    meta = META.replace("<task>", "<task>\n      <mode>interpolation</mode>\n      <original_size><width>1920"
                                  "</width><height>1080</height></original_size>")
    write_task(tmp_path, "", meta=meta)
    with pytest.raises(DatasetError, match="CVAT for video"):
        load_dataset(tmp_path)


def test_one_name_in_two_subsets_stays_two_images(tmp_path: Path) -> None:
    """A project export with a.jpg in Train and in Validation: two images, named by subset, each its split."""
    images = "".join(f"""
  <image id="{k}" name="a.jpg" subset="{subset}" task_id="7" width="64" height="48">
    <polygon label="car" source="manual" occluded="0" points="1,1;20,1;20,20" z_order="0"></polygon>
  </image>""" for k, subset in enumerate(("Train", "Validation")))
    write_task(tmp_path, images)
    for k, subset in enumerate(("Train", "Validation")):
        (tmp_path / "images" / subset).mkdir()
        Image.new("RGB", (W, H), (k * 200, 0, 0)).save(tmp_path / "images" / subset / "a.jpg")
    ds = load_dataset(tmp_path)
    assert [(s.name, s.split) for s in ds.samples] == [("Train/a.jpg", "train"), ("Validation/a.jpg", "val")]
    assert [s.load_image()[0, 0, 0] for s in ds.samples] == [0, 200]


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

# elements people's exports hold (shapes without area, cuboids, skeletons, masks), the video task's marks, and
# values of the attributes they carry
CVAT_VALUES = st.sampled_from([
    '<polyline label="car" points="0,0;5,5"/>', '<points label="car" points="1,1"/>', '<tag label="car"/>',
    '<polygon label="car" points="1,1;9,1;5,8"/>', '<polygon label="car" points="1,1;x"/>',
    '<box label="car" xtl="1" ytl="1" xbr="9" ybr="9"/>', '<cuboid label="car"/>',
    '<skeleton label="s"><points label="1" points="1,1"/></skeleton>',
    '<mask label="car" rle="1,2" left="0" top="0" width="3" height="1"/>', "<mode>interpolation</mode>",
    "<mode>annotation</mode>", "<original_size><width>9</width><height>9</height></original_size>",
    '<track id="0" label="car"><box frame="0" xtl="1" ytl="1" xbr="5" ybr="5"/></track>',
    '<image id="9" name="frame_000000.png" subset="Validation" width="64" height="48"/>',
    "Train", "Validation", "default", "x", "1e400", "nan", "2,3;4,5"]) | NAMES
FUZZ_EXAMPLES = [
    Example("task", lambda root: write_task(root), files=("annotations.xml", "images/frame_000000.png"),
            points=("annotations.xml", ""), values=CVAT_VALUES,
            moves=("images/Train/frame_000000.png", "frame_000000.png", "images/Validation/frame_000001.png")),
]
