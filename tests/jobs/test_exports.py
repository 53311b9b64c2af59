"""Exports read back by independent clients, and the mask readers they share.

Readers used: Pillow for the DAVIS PNGs, pycocotools for every COCO RLE, the standard
library's XML parser plus CVAT's own mask conversion (CVAT RLE read as an uncompressed COCO RLE
of the transposed box, decoded by pycocotools, as ``MaskConverter.cvat_rle_to_dm_rle`` does in
CVAT's server) for CVAT XML, the csv module and py-motmetrics' MOTChallenge reader for MOT.
Datumaro was not installed: it would downgrade opencv and pillow in the shared environment,
and its CVAT reader cannot read masks inside tracks.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import motmetrics
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from configs.errors import InputError
from jobs.exports import FrameMasks
from jobs.exports.cvat import CvatLayout, encode_cvat_mask, write_cvat_video
from jobs.exports.davis_png import write_davis_pngs
from jobs.exports.mot import write_mot
from jobs.exports.ytvis import write_ytvis, ytvis_document
from jobs.mask_codec import mask_bbox
from jobs.mask_io import (
    davis_palette,
    label_map,
    labels_from_masks,
    read_mask_folder,
    read_mask_png,
    write_indexed_png,
)
from jobs.media import ModelInfo, VideoInfo
from jobs.tracks import TracksWriter, read_tracks

# pycocotools' numpy-2 notice on decode; py-motmetrics' reader on pandas 3 (it still works)
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated"),
]

FRAMES = 8


@pytest.fixture(scope="module")
def real_video(davis_root: Path) -> tuple[VideoInfo, list[FrameMasks]]:
    """First 8 frames of dog-agility (object 1) plus a synthetic object 2 that comes and goes.

    Object 2 is visible on frames 1-2 and 5-6, with a score of 0.5.
    """
    folder = davis_root / "Annotations" / "dog-agility"
    frames = []
    for item in list(read_mask_folder(folder))[:FRAMES]:
        masks = dict(item.masks)
        scores = {1: 0.9}
        if item.frame in (1, 2, 5, 6):
            extra = np.zeros((480, 854), dtype=bool)
            extra[40 + item.frame : 90, 600 : 700 + item.frame] = True
            extra[60:70, 650:660] = False  # a hole
            masks[2] = extra & ~masks[1]
            scores[2] = 0.5
        frames.append(FrameMasks(frame=item.frame, masks=masks, scores=scores))
    video = VideoInfo(width=854, height=480, fps=24.0, num_frames=FRAMES, source="dog-agility")
    return video, frames


def _expected(frames: list[FrameMasks], obj_id: int) -> dict[int, np.ndarray]:
    return {f.frame: f.masks[obj_id] for f in frames if obj_id in f.masks}


# --- mask readers -----------------------------------------------------------------------------


def _png(tmp_path: Path, array: np.ndarray, mode: str, palette: bool = False) -> Path:
    image = Image.fromarray(array)
    if palette:
        image.putpalette(davis_palette().tobytes())
    assert image.mode == mode
    path = tmp_path / f"{mode.replace(';', '_')}.png"
    image.save(path)
    return path


IDS = np.array([[0, 1, 1], [2, 2, 255], [0, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize(
    ("array", "mode", "palette", "expected"),
    [
        (np.where(IDS > 0, 255, 0).astype(np.uint8), "L", False, {1: IDS > 0}),
        (IDS, "P", True, {1: IDS == 1, 2: IDS == 2}),  # 255 is void
        (IDS, "L", False, {1: IDS == 1, 2: IDS == 2}),
        (IDS > 0, "1", False, {1: IDS > 0}),
        (
            np.where(IDS == 255, 0, IDS).astype(np.uint16) * 300,
            "I;16",
            False,
            {300: IDS == 1, 600: IDS == 2},
        ),
    ],
    ids=["L-binary", "P-ids", "L-ids", "1-bit", "I16-ids"],
)
def test_read_mask_png_modes(
    tmp_path: Path, array: np.ndarray, mode: str, palette: bool, expected: dict
) -> None:
    masks = read_mask_png(_png(tmp_path, array, mode, palette))
    assert sorted(masks) == sorted(expected)
    for obj_id, mask in expected.items():
        assert masks[obj_id].dtype == bool
        assert np.array_equal(masks[obj_id], mask)


def test_label_map_palette_with_alpha_keeps_ids() -> None:
    image = Image.fromarray(IDS)
    image.putpalette(davis_palette().tobytes())
    # PA images come from other formats (PNG cannot hold them); the index band is the id
    assert np.array_equal(label_map(image.convert("PA")), IDS)


def test_read_mask_png_rgb_colours_map_through_the_palette(tmp_path: Path) -> None:
    rgb = davis_palette()[np.where(IDS == 255, 0, IDS)]
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    masks = read_mask_png(path)
    assert sorted(masks) == [1, 2]
    assert np.array_equal(masks[2], IDS == 2)
    Image.fromarray(np.full((2, 2, 3), 17, np.uint8)).save(path)
    with pytest.raises(InputError, match="DAVIS palette"):
        read_mask_png(path)


def test_read_mask_png_la_mode_real_frame(davis_root: Path) -> None:
    path = davis_root / "Annotations" / "bear" / "00077.png"
    with Image.open(path) as image:
        assert image.mode == "LA"
        grey = np.asarray(image.getchannel("L"))
        assert label_map(image).max() == 1
    masks = read_mask_png(path)
    assert list(masks) == [1]
    assert np.array_equal(masks[1], grey > 0)
    assert masks[1].sum() > 1000


def test_read_mask_png_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read mask image"):
        read_mask_png(path)


def test_read_mask_png_refuses_a_decompression_bomb(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses > 2x this
    with pytest.raises(InputError, match=r"^cannot read mask image .*decompression bomb"):
        read_mask_png(path)


def test_read_mask_png_32_bit_labels_with_a_huge_id(tmp_path: Path) -> None:
    """A 32-bit label map (TIFF, whatever its name) with id 2e9 reads without counting to 2e9."""
    labels = np.zeros((4, 5), dtype=np.int32)
    labels[1:3, 2:4] = 2_000_000_000
    path = tmp_path / "00000.png"
    Image.fromarray(labels).save(path, format="TIFF")  # int32: mode "I"
    masks = read_mask_png(path)
    assert list(masks) == [2_000_000_000]
    assert np.array_equal(masks[2_000_000_000], labels > 0)


def test_write_indexed_png_rejects_ids_beyond_the_palette(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not fit"):
        write_indexed_png(tmp_path / "x.png", {300: np.ones((2, 2), bool)}, (2, 2))


# --- tracks.json ------------------------------------------------------------------------------


def _tracks_document(video: VideoInfo, frames: list[FrameMasks]) -> dict:
    objects: dict[int, list[dict]] = {}
    for item in frames:
        for obj_id, mask in item.masks.items():
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            objects.setdefault(obj_id, []).append(
                {
                    "frame": item.frame,
                    "rle": {"size": list(rle["size"]), "counts": rle["counts"].decode()},
                    "bbox": mask_bbox(mask),
                    "score": item.score(obj_id),
                    "visible": True,
                }
            )
    objects[1].append({"frame": 7, "rle": None, "bbox": None, "score": 0.0, "visible": False})
    return {
        "video": {"width": video.width, "height": video.height, "fps": 24, "num_frames": 8},
        "model": {"name": "test"},
        "objects": [{"id": k, "frames": v} for k, v in objects.items()],
    }


def test_read_tracks_decodes_every_frame(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    frames = frames[:7]  # frame 7 of object 1 is marked invisible in the file
    path = tmp_path / "seq" / "tracks.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_tracks_document(video, frames)))
    tracks = read_tracks(path, finished=True)
    assert tracks.video == VideoInfo(854, 480, 24.0, 8, source=str(path.parent))
    assert tracks.video.name == "seq"  # the video is named after its folder
    decoded = list(tracks.frames())
    assert [f.frame for f in decoded] == list(range(8))
    for item, expected in zip(decoded, frames, strict=False):
        assert sorted(item.masks) == sorted(expected.masks)
        for obj_id, mask in expected.masks.items():
            assert np.array_equal(item.masks[obj_id], mask)
            assert item.scores[obj_id] == expected.score(obj_id)
    assert decoded[7].masks == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", r"^not a valid tracks\.json: .*Expecting property name"),
        ('{"objects": []}', r"video: Field required"),
        (
            '{"video": {"width": 4, "height": 4, "fps": 1, "num_frames": 2}, "objects": [{"id": 1,'
            ' "frames": [{"frame": 5, "rle": null, "score": 0, "visible": false}]}]}',
            r"object 1 frame 5 is past the video's 2 frames",
        ),
        (
            '{"video": {"width": 4, "height": 4, "fps": 1}, "objects": []}',
            r"video\.num_frames is not set",  # an unfinished file cannot be exported
        ),
    ],
)
def test_read_tracks_rejects_bad_files(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "tracks.json"
    path.write_text(document)
    with pytest.raises(InputError, match=message):
        read_tracks(path, finished=True)


def test_a_damaged_compressed_rle_names_its_object_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "seq" / "tracks.json"
    video = VideoInfo(4, 3, 1.0, 2, source="seq")
    _write_tracks_json(path, video, [FrameMasks(0, {7: np.ones((3, 4), bool)})])
    document = json.loads(path.read_text())
    document["objects"][0]["frames"][0]["rle"]["counts"] = "\x7f!!"
    path.write_text(json.dumps(document))
    tracks = read_tracks(path, finished=True)  # compressed counts are checked when decoded
    with pytest.raises(InputError, match=r"^object 7 frame 0: invalid COCO RLE mask"):
        tracks.frame_masks(0)


# --- DAVIS PNG --------------------------------------------------------------------------------


def test_davis_png_round_trip(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    # frames 3 and 7 are left out of the stream: written as background
    streamed = [f for f in frames if f.frame not in (3, 7)]
    assert write_davis_pngs(tmp_path, video, streamed) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i:05d}.png" for i in range(FRAMES)]
    with Image.open(tmp_path / "00001.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        assert set(np.unique(np.asarray(image)).tolist()) == {0, 1, 2}
    read = {f.frame: f.masks for f in read_mask_folder(tmp_path)}
    assert read[3] == {} and read[7] == {}
    for item in streamed:
        assert sorted(read[item.frame]) == sorted(item.masks)
        for obj_id, mask in item.masks.items():
            assert np.array_equal(read[item.frame][obj_id], mask)


def test_exporters_reject_bad_streams(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    with pytest.raises(InputError, match="frames must increase"):
        write_davis_pngs(tmp_path, video, [frames[2], frames[1]])
    small = FrameMasks(0, {1: np.ones((4, 4), bool)})
    with pytest.raises(InputError, match="mask shape"):
        write_mot(tmp_path / "x.txt", video, [small])
    with pytest.raises(InputError, match="outside the video"):
        write_ytvis(tmp_path / "x.json", video, [FrameMasks(8, {})])
    unknown = VideoInfo(854, 480, 24.0, source="seq")  # no frame count: no format can say it
    for write in (write_davis_pngs, write_mot, write_ytvis, write_cvat_video):
        with pytest.raises(InputError, match="^cannot export seq: its frame count is not known"):
            write(tmp_path / "unknown", unknown, frames[:1])
        assert not (tmp_path / "unknown").exists()


# --- one label per pixel (DAVIS PNG, eval) ----------------------------------------------------

# Three 1x4 rows: object 1 covers columns 0-2, object 2 columns 1-3 (overlap: columns 1-2).
_LEFT = np.array([[True, True, True, False]])
_RIGHT = np.array([[False, True, True, True]])


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({1: 0.9, 2: 0.2}, [1, 1, 1, 2]),  # the lower id scores higher: it keeps the overlap
        ({1: 0.2, 2: 0.9}, [1, 2, 2, 2]),  # the higher id scores higher
        ({1: -3.0, 2: -1.5}, [1, 2, 2, 2]),  # logits: the less negative wins
        ({1: 0.5, 2: 0.5}, [1, 1, 1, 2]),  # a tie: the lower id, as vos_inference.py
        ({}, [1, 1, 1, 2]),  # no scores: every object 1.0, a tie
        ({1: float("nan"), 2: 0.1}, [1, 2, 2, 2]),  # NaN ranks last
    ],
    ids=["low-id-higher", "high-id-higher", "logits", "tie", "no-scores", "nan"],
)
def test_one_label_per_pixel_highest_score_wins(scores: dict, expected: list[int]) -> None:
    masks = {1: _LEFT, 2: _RIGHT}
    labels = labels_from_masks(masks, (1, 4), scores)
    assert labels.tolist() == [expected]
    disjoint = FrameMasks(0, masks, scores).one_label_per_pixel()
    assert sorted(disjoint) == [1, 2]
    for obj_id, mask in disjoint.items():
        assert mask.tolist() == [[v == obj_id for v in expected]]
    assert not (disjoint[1] & disjoint[2]).any()


def test_one_label_per_pixel_drops_a_fully_covered_object() -> None:
    inner = np.array([[False, True, False, False]])
    disjoint = FrameMasks(0, {1: _LEFT, 2: inner}, {1: 0.9, 2: 0.1}).one_label_per_pixel()
    assert list(disjoint) == [1]  # object 2 has no pixel left: absent, as in a label map
    assert np.array_equal(disjoint[1], _LEFT)


@pytest.mark.parametrize(("winner", "scores"), [(1, {1: 0.8, 2: 0.3}), (2, {1: 0.3, 2: 0.8})])
def test_davis_png_overlap_goes_to_the_highest_score(
    tmp_path: Path, winner: int, scores: dict
) -> None:
    """Where two objects overlap, the PNG holds the higher-scoring one, whatever its id."""
    left = np.zeros((6, 8), dtype=bool)
    left[1:5, 0:5] = True
    right = np.zeros((6, 8), dtype=bool)
    right[1:5, 3:8] = True
    write_davis_pngs(
        tmp_path, VideoInfo(8, 6, 1.0, 1, source="v"), [FrameMasks(0, {1: left, 2: right}, scores)]
    )
    with Image.open(tmp_path / "00000.png") as image:
        labels = np.asarray(image)
    assert (labels[left & right] == winner).all() and (left & right).sum() == 8
    assert (labels[left & ~right] == 1).all() and (labels[right & ~left] == 2).all()
    assert (labels[~(left | right)] == 0).all()


def test_instance_formats_keep_overlapping_masks_whole(tmp_path: Path) -> None:
    """YouTube-VIS, CVAT and MOT hold one mask or box per object: overlaps stay in each."""
    left = np.zeros((6, 8), dtype=bool)
    left[1:5, 0:5] = True
    right = np.zeros((6, 8), dtype=bool)
    right[1:5, 3:8] = True
    video = VideoInfo(8, 6, 1.0, 1, source="v")
    frames = [FrameMasks(0, {1: left, 2: right}, {1: 0.9, 2: 0.1})]
    document = ytvis_document(video, frames)
    for ann, mask in zip(document["annotations"], (left, right), strict=True):
        assert np.array_equal(mask_utils.decode(ann["segmentations"][0]).astype(bool), mask)
    write_mot(tmp_path / "mot.txt", video, frames)
    assert (tmp_path / "mot.txt").read_text().splitlines() == [
        "1,1,1,2,5,4,0.9,-1,-1,-1",
        "1,2,4,2,5,4,0.1,-1,-1,-1",
    ]
    write_cvat_video(tmp_path / "a.xml", video, frames, layout=CvatLayout.OBJECT_TRACKS)
    shapes = ET.parse(tmp_path / "a.xml").getroot().findall("track/mask")
    assert len(shapes) == 2
    for shape, mask in zip(shapes, (left, right), strict=True):
        assert np.array_equal(_cvat_decode(shape, 6, 8), mask)


# --- box conventions at the image border -----------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "cols", "coco"),
    [
        (slice(0, 1), slice(0, 1), [0, 0, 1, 1]),  # the first pixel
        (slice(5, 6), slice(7, 8), [7, 5, 1, 1]),  # the last pixel
        (slice(0, 6), slice(0, 8), [0, 0, 8, 6]),  # the whole frame
        (slice(2, 4), slice(1, 7), [1, 2, 6, 2]),
    ],
    ids=["first-pixel", "last-pixel", "whole-frame", "inside"],
)
def test_every_format_places_the_same_box(
    tmp_path: Path, rows: slice, cols: slice, coco: list[int]
) -> None:
    """One mask, each format's own convention: COCO/YouTube-VIS/CVAT 0-based, MOT 1-based."""
    mask = np.zeros((6, 8), dtype=bool)
    mask[rows, cols] = True
    video = VideoInfo(8, 6, 1.0, 1, source="v")
    frames = [FrameMasks(0, {1: mask})]
    tracks = read_tracks(_write_tracks_json(tmp_path / "tracks.json", video, frames))
    assert tracks.objects[0].frames[0].bbox == coco
    (ann,) = ytvis_document(video, frames)["annotations"]
    assert ann["bboxes"] == [[float(v) for v in coco]] and ann["areas"] == [mask.sum()]
    write_cvat_video(tmp_path / "a.xml", video, frames)
    shape = ET.parse(tmp_path / "a.xml").getroot().find("track/mask")
    assert [int(shape.attrib[k]) for k in ("left", "top", "width", "height")] == coco
    assert np.array_equal(_cvat_decode(shape, 6, 8), mask)
    write_mot(tmp_path / "mot.txt", video, frames)
    x, y, w, h = coco
    assert (tmp_path / "mot.txt").read_text() == f"1,1,{x + 1},{y + 1},{w},{h},1,-1,-1,-1\n"


def test_an_object_with_an_empty_mask_is_absent_from_every_format(tmp_path: Path) -> None:
    """tracks.json keeps its entry with box [0, 0, 0, 0] (as pycocotools' toBbox of an empty
    mask); the other formats have no box for it: null in YouTube-VIS, no line, no shape."""
    empty = np.zeros((6, 8), dtype=bool)
    video = VideoInfo(8, 6, 1.0, 1, source="v")
    frames = [FrameMasks(0, {3: empty})]
    tracks = read_tracks(_write_tracks_json(tmp_path / "tracks.json", video, frames))
    (entry,) = tracks.objects[0].frames
    assert entry.bbox == [0, 0, 0, 0] and not entry.visible
    coded = mask_utils.encode(np.asfortranarray(empty.astype(np.uint8)))
    assert mask_utils.toBbox(coded).tolist() == entry.bbox
    assert ytvis_document(video, frames)["annotations"] == []
    assert write_mot(tmp_path / "mot.txt", video, frames) == 0
    assert write_cvat_video(tmp_path / "a.xml", video, frames) == 0
    write_davis_pngs(tmp_path / "davis", video, frames)
    with Image.open(tmp_path / "davis" / "00000.png") as image:
        assert not np.asarray(image).any()


# --- YouTube-VIS ------------------------------------------------------------------------------


def test_ytvis_masks_decode_to_the_input(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    path = tmp_path / "ytvis.json"
    assert write_ytvis(path, video, frames, labels={1: "dog", 2: "thing"}) == 2
    data = json.loads(path.read_text())
    (entry,) = data["videos"]
    assert entry["width"] == 854 and entry["height"] == 480 and entry["length"] == FRAMES
    assert entry["file_names"][:2] == ["dog-agility/00000.jpg", "dog-agility/00001.jpg"]
    assert data["categories"] == [
        {"id": 1, "name": "dog", "supercategory": "dog"},
        {"id": 2, "name": "thing", "supercategory": "thing"},
    ]
    by_id = {a["id"]: a for a in data["annotations"]}
    assert by_id[1]["category_id"] == 1 and by_id[2]["category_id"] == 2
    for obj_id, ann in by_id.items():
        assert ann["video_id"] == entry["id"] and ann["iscrowd"] == 0
        expected = _expected(frames, obj_id)
        for key in ("segmentations", "areas", "bboxes"):
            assert len(ann[key]) == FRAMES
        for frame in range(FRAMES):
            rle = ann["segmentations"][frame]
            if frame not in expected:
                assert rle is None and ann["areas"][frame] is None and ann["bboxes"][frame] is None
                continue
            decoded = mask_utils.decode(rle).astype(bool)
            assert np.array_equal(decoded, expected[frame])
            assert ann["areas"][frame] == expected[frame].sum()
            assert ann["bboxes"][frame] == mask_utils.toBbox(rle).tolist()
            assert ann["bboxes"][frame] == mask_bbox(expected[frame])


def test_ytvis_default_category() -> None:
    video = VideoInfo(4, 3, 1.0, 2, source="v")
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    document = ytvis_document(video, [FrameMasks(1, {5: mask})])
    assert document["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    (ann,) = document["annotations"]
    assert ann["id"] == 5 and ann["segmentations"][0] is None
    assert ann["areas"] == [None, 2.0] and ann["bboxes"] == [None, [1.0, 1.0, 2.0, 1.0]]


# --- CVAT -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "rle", "box"),
    [
        # tight box rows 1..3, cols 1..3: 0 1 1 / 0 0 1 / 1 0 0 -> runs 1,2,2,2,2
        (["......", "..##..", "...#..", ".#....", "......"], (1, 2, 2, 2, 2), (1, 1, 3, 3)),
        # a full box starts with an empty background run
        (["....", ".##.", ".##.", "...."], (0, 4), (1, 1, 2, 2)),
        (["#"], (0, 1), (0, 0, 1, 1)),
    ],
)
def test_encode_cvat_mask_by_hand(rows: list[str], rle: tuple, box: tuple) -> None:
    mask = np.array([[c == "#" for c in row] for row in rows])
    encoded = encode_cvat_mask(mask)
    assert encoded.rle == rle
    assert (encoded.left, encoded.top, encoded.width, encoded.height) == box


def test_encode_cvat_mask_empty() -> None:
    assert encode_cvat_mask(np.zeros((3, 3), bool)) is None


def _cvat_decode(mask_el: ET.Element, height: int, width: int) -> np.ndarray:
    """CVAT's import conversion: the RLE is an uncompressed COCO RLE of the (w, h) box."""
    runs = [int(v) for v in mask_el.attrib["rle"].split(",")]
    left, top = int(mask_el.attrib["left"]), int(mask_el.attrib["top"])
    w, h = int(mask_el.attrib["width"]), int(mask_el.attrib["height"])
    assert sum(runs) == w * h
    coded = mask_utils.frPyObjects({"counts": runs, "size": [w, h]}, w, h)
    full = np.zeros((height, width), dtype=bool)
    full[top : top + h, left : left + w] = mask_utils.decode(coded).T.astype(bool)
    return full


def _parse_cvat(path: Path) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.parse(path).getroot()
    assert root.tag == "annotations"
    assert root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task.findtext("mode") == "interpolation"
    assert task.findtext("size") == str(FRAMES)
    assert task.findtext("stop_frame") == str(FRAMES - 1)
    assert task.findtext("original_size/width") == "854"
    assert task.findtext("original_size/height") == "480"
    assert root.findtext("meta/dumped") == "2024-01-02T03:04:05+00:00"
    tracks = root.findall("track")
    assert [t.attrib["id"] for t in tracks] == [str(i) for i in range(len(tracks))]
    for track in tracks:
        assert track.attrib["source"] == "auto"
        for shape in track:
            assert shape.tag == "mask"
            assert shape.attrib["keyframe"] == "1" and shape.attrib["occluded"] == "0"
            assert shape.attrib["z_order"] == "0"
    return task, tracks


STAMP = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_cvat_shape_tracks_import_every_mask(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    path = tmp_path / "annotations.xml"
    labels = {1: "dog", 2: "thing"}
    count = write_cvat_video(path, video, frames, labels=labels, dumped_at=STAMP)
    task, tracks = _parse_cvat(path)
    assert [n.text for n in task.findall("labels/label/name")] == ["dog", "thing", "object"]
    assert all(n.text == "mask" for n in task.findall("labels/label/type"))
    visible = sum(len(f.masks) for f in frames)
    assert count == len(tracks) == visible
    imported: dict[tuple[str, int], np.ndarray] = {}
    for track in tracks:
        first, *rest = list(track)  # CVAT's importer keeps the first mask of a mask track
        assert first.attrib["outside"] == "0"
        frame = int(first.attrib["frame"])
        imported[(track.attrib["label"], frame)] = _cvat_decode(first, 480, 854)
        if frame + 1 < FRAMES:
            (closing,) = rest
            assert closing.attrib["outside"] == "1"
            assert int(closing.attrib["frame"]) == frame + 1
        else:
            assert rest == []
    for obj_id, name in labels.items():
        for frame, mask in _expected(frames, obj_id).items():
            assert np.array_equal(imported[(name, frame)], mask)
            assert imported[(name, frame)].sum() == mask.sum()


def test_cvat_object_tracks_keep_identity(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    path = tmp_path / "annotations.xml"
    count = write_cvat_video(path, video, frames, layout=CvatLayout.OBJECT_TRACKS, dumped_at=STAMP)
    _, tracks = _parse_cvat(path)
    assert count == len(tracks) == 2
    for obj_id, track in zip((1, 2), tracks, strict=True):
        assert track.attrib["label"] == "object"
        expected = _expected(frames, obj_id)
        shapes = {int(s.attrib["frame"]): s for s in track}
        inside = {f for f, s in shapes.items() if s.attrib["outside"] == "0"}
        outside = {f for f, s in shapes.items() if s.attrib["outside"] == "1"}
        assert inside == set(expected)
        for frame in inside:
            assert np.array_equal(_cvat_decode(shapes[frame], 480, 854), expected[frame])
        if obj_id == 1:
            assert outside == set()  # visible on every frame
        else:
            assert outside == {3, 7}  # disappears after frames 2 and 6
            assert shapes[3].attrib["rle"] == shapes[2].attrib["rle"]


# --- MOT --------------------------------------------------------------------------------------


def test_mot_lines_parse_back(tmp_path: Path, real_video) -> None:
    video, frames = real_video
    path = tmp_path / "mot.txt"
    assert write_mot(path, video, frames) == sum(len(f.masks) for f in frames)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert all(len(row) == 10 for row in rows)
    parsed = {(int(r[0]), int(r[1])): r for r in rows}
    for item in frames:
        for obj_id, mask in item.masks.items():
            row = parsed[(item.frame + 1, obj_id)]  # 1-based frames
            x, y, w, h = mask_bbox(mask)
            assert tuple(int(v) for v in row[2:6]) == (x + 1, y + 1, w, h)  # 1-based pixels
            assert float(row[6]) == item.score(obj_id)
            assert row[7:] == ["-1", "-1", "-1"]
    assert min(k[0] for k in parsed) == 1


def test_mot_hand_made_line(tmp_path: Path) -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[2:5, 3:7] = True  # COCO box [3, 2, 4, 3]
    path = tmp_path / "mot.txt"
    write_mot(path, VideoInfo(8, 6, 1.0, 3, source="v"), [FrameMasks(2, {4: mask}, {4: 0.25})])
    assert path.read_text() == "3,4,4,3,4,3,0.25,-1,-1,-1\n"


def _write_tracks_json(path: Path, video: VideoInfo, frames: list[FrameMasks]) -> Path:
    """A real tracks.json by TracksWriter, scores as logits (the tracker's)."""
    meta = VideoInfo(video.width, video.height, video.fps)
    with TracksWriter(path, meta, ModelInfo(name="test")) as writer:
        for item in frames:
            for obj_id, mask in sorted(item.masks.items()):
                writer.add(item.frame, obj_id, mask, item.score(obj_id), bool(mask.any()))
        writer.finish(video.num_frames)
    return path


def test_mot_read_by_motmetrics_gives_the_tracks_json_boxes(tmp_path: Path, real_video) -> None:
    """py-motmetrics' MOTChallenge reader (``mot15-2D``) recovers every tracks.json box."""
    video, frames = real_video
    tracks_path = _write_tracks_json(tmp_path / "seq" / "tracks.json", video, frames)
    mot_path = tmp_path / "mot.txt"
    write_mot(mot_path, video, read_tracks(tracks_path, finished=True).frames())
    table = motmetrics.io.loadtxt(str(mot_path), fmt="mot15-2D")
    read_back = {
        (frame_id - 1, obj_id): [int(row.X), int(row.Y), int(row.Width), int(row.Height)]
        for (frame_id, obj_id), row in table.iterrows()
    }
    expected = {
        (entry.frame, track.id): entry.bbox
        for track in read_tracks(tracks_path).objects
        for entry in track.frames
        if entry.visible
    }
    assert len(expected) == sum(len(f.masks) for f in frames) == 12
    assert read_back == expected


def test_mot_box_touching_the_origin_is_1_1(tmp_path: Path) -> None:
    """MOTChallenge's first pixel is (1, 1): py-motmetrics reads it back as (0, 0)."""
    mask = np.zeros((4, 5), dtype=bool)
    mask[0:2, 0:3] = True
    path = tmp_path / "mot.txt"
    write_mot(path, VideoInfo(5, 4, 1.0, 1, source="v"), [FrameMasks(0, {1: mask})])
    assert path.read_text().startswith("1,1,1,1,3,2,")
    row = motmetrics.io.loadtxt(str(path), fmt="mot15-2D").loc[(1, 1)]
    assert (row.X, row.Y, row.Width, row.Height) == (0, 0, 3, 2)
