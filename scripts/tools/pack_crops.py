"""Pack the crops of folders of lists into small pictures, for training on another machine;
with ``--pictures``, pack the picture lists (whole pictures, shrunk) instead.

Each list line's crop box, with the augmentation margin around it, is cut from its picture,
resized to ``--side`` pixels and saved as a JPEG (once, however many lists name it); the
packed lists hold the same faces, points and attributes relative to these pictures, and
lists.json comes along. The course data's 152 MB of pictures pack into about 25 MB.

    python scripts/tools/pack_crops.py lists/split lists/all --out packed
    python scripts/tools/pack_crops.py lists/tune --pictures --out packed-pictures
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np

from landmarks.data.dataset import AUGMENT_MARGIN, CropSettings
from landmarks.data.images import crop_resize, load_image
from landmarks.cli import run_cli
from landmarks.data.labels import ListEntry, read_list, write_list
from landmarks.files import Outputs


def pack(list_path: Path, out_dir: Path, crops: Path, side: int, quality: int) -> int:
    data = read_list(list_path)
    settings = CropSettings(size=112, channels=3, margin=AUGMENT_MARGIN)
    pad = (settings.cache_size - settings.size) / 2 / settings.size  # margin share of the crop box
    crops.mkdir(parents=True, exist_ok=True)
    cache: dict[Path, np.ndarray] = {}
    packed = []
    for entry in data.entries:
        region = settings.region(entry.box)
        key = hashlib.sha1(f"{Path(entry.image).resolve()} {entry.box.tolist()}".encode()).hexdigest()[:16]
        name = crops / f"{key}.jpg"
        if not name.is_file():
            if entry.image not in cache:
                cache.clear()  # lists are grouped by picture: keep one decoded at a time
                cache[entry.image] = load_image(entry.image, 3)
            crop = crop_resize(cache[entry.image], region, side, side)
            cv2.imwrite(str(name), crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        scale = side / (region[2:] - region[:2])
        margin = pad * (entry.box[2:] - entry.box[:2]) * scale
        box = np.concatenate([margin, side - margin])
        points = None if entry.points is None else entry.points * scale
        packed.append(ListEntry(name, box, points, entry.source, attributes=entry.attributes))
    write_list(out_dir / list_path.name, packed, labelled=data.stage == 3)
    return len(packed)


def pack_pictures(list_path: Path, out_dir: Path, pictures_dir: Path, side: int, quality: int) -> int:
    """A picture list's pictures shrunk to ``side`` (longer side), boxes and points scaled with them."""
    from landmarks.data.images import image_size
    from landmarks.data.labels import Picture, read_picture_list, write_picture_list
    from landmarks.data.pictures import decode_shrunk
    pictures, _ = read_picture_list(list_path)
    pictures_dir.mkdir(parents=True, exist_ok=True)
    packed = []
    for picture in pictures:
        small = decode_shrunk(picture.image, side)
        scale = small.shape[1] / image_size(picture.image)[0]
        key = hashlib.sha1(str(Path(picture.image).resolve()).encode()).hexdigest()[:16]
        name = pictures_dir / f"{key}.jpg"
        if not name.is_file():
            cv2.imwrite(str(name), small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        packed.append(Picture(name, picture.boxes * scale, picture.points * scale))
    write_picture_list(out_dir / list_path.name, packed)
    return len(packed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("list_dirs", type=Path, nargs="+", help="folders of lists (train.txt, test.txt, ... and lists.json)")
    parser.add_argument("--out", type=Path, required=True, help="where the packed folders and their crops go")
    parser.add_argument("--side", type=int, default=140, help="packed crop side in pixels; 140, the cached crop of a 112 net with its augmentation margin, keeps crops as they are (default: %(default)s)")
    parser.add_argument("--pictures", action="store_true",
                        help="pack the picture lists (*_pictures.txt) instead, longer side --picture-side")
    parser.add_argument("--picture-side", type=int, default=512, help="(default: %(default)s)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default: %(default)s)")
    args = parser.parse_args(argv)
    return run_cli(lambda: pack_all(args))


LIST_NAMES = ("train.txt", "val.txt", "test.txt", "train_pictures.txt", "val_pictures.txt", "test_pictures.txt",
              "lists.json")


def pack_all(args) -> int:
    outputs = Outputs()  # a packed folder never takes the place of the lists it packs
    for list_dir in args.list_dirs:
        outputs.reads("list_dirs", *(list_dir / name for name in LIST_NAMES if (list_dir / name).is_file()))
    for list_dir in args.list_dirs:
        for name in LIST_NAMES:
            outputs.check("--out", args.out / list_dir.name / name)
    for list_dir in args.list_dirs:
        out_dir = args.out / list_dir.name
        out_dir.mkdir(parents=True, exist_ok=True)
        if args.pictures:
            for name in ("train_pictures.txt", "val_pictures.txt", "test_pictures.txt"):
                path = list_dir / name
                if path.is_file() and path.read_text().strip():
                    count = pack_pictures(path, out_dir, args.out / "pictures", args.picture_side, args.quality)
                    print(f"{path}: {count} pictures")
            continue
        for name in ("train.txt", "val.txt", "test.txt"):
            path = list_dir / name
            if path.is_file() and path.read_text().strip():
                print(f"{path}: {pack(path, out_dir, args.out / 'crops', args.side, args.quality)} crops")
        if (list_dir / "lists.json").is_file():
            shutil.copy(list_dir / "lists.json", out_dir / "lists.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
