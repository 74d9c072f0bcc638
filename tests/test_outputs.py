"""No output is ever written over a file the command reads: each writer is refused its own
command's inputs (by any name), with exit status 2 and one line naming both flags, and the
input comes out byte for byte as it went in. Outputs are whole or absent."""

import json
import os
import shutil

import numpy as np
import pytest

from landmarks.checkpoint import resolve_model
from landmarks.commands.lists import main as lists_main
from landmarks.data.images import load_image
from landmarks.detector import main
from landmarks.errors import UsageError
from landmarks.files import Outputs, PartFile
from landmarks.inference.clips import pan_frames, write_clip
from landmarks.inference.predict import drawn_by_us
from landmarks.inference.video import VideoWriter

from conftest import run_main, write_image


@pytest.fixture(scope="module")
def clip(sample_dir, tmp_path_factory):
    frames, _ = pan_frames(load_image(sample_dir / "I" / "000719.jpg", 3), 6, travel=0.1)
    return write_clip(frames, tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture
def picture(sample_dir, tmp_path):
    path = tmp_path / "in" / "face.jpg"
    path.parent.mkdir()
    shutil.copy(sample_dir / "I" / "000719.jpg", path)
    return path


def refused(args, capsys, flag, source, *unchanged):
    """Run ``args``; it must exit 2 naming ``flag`` and ``source`` and leave ``unchanged`` as they were."""
    before = [path.read_bytes() for path in unchanged]
    code, err = run_main(args, capsys)
    assert code == 2, err
    assert err.startswith(f"error: {flag} ") and f"is the {source} input; choose another path" in err, err
    assert len(err.splitlines()) == 1
    assert [path.read_bytes() for path in unchanged] == before


def test_the_video_is_not_written_over_by_its_own_output(clip, tmp_path, capsys):
    copy = tmp_path / "clip.mp4"
    shutil.copy(clip, copy)
    refused(["--phase", "predict", "--video", str(copy), "--out", str(copy), "--detector", "haar"],
            capsys, "--out", "--video", copy)
    refused(["--phase", "predict", "--video", str(copy), "--out", str(tmp_path / "o.mp4"), "--json-out", str(copy),
             "--detector", "haar"], capsys, "--json-out", "--video", copy)
    assert not (tmp_path / "o.mp4").exists()


def test_the_same_file_by_another_name_is_still_refused(picture, tmp_path, capsys):
    link = tmp_path / "link.jpg"
    link.symlink_to(picture)
    hard = tmp_path / "hard.jpg"
    os.link(picture, hard)
    dotted = picture.parent / ".." / "in" / "face.jpg"
    for out in (link, hard, dotted):
        refused(["--phase", "predict", "--image", str(picture), "--out", str(out)], capsys, "--out", "--image",
                picture)
    refused(["--phase", "predict", "--image", str(picture), "--out", str(tmp_path / "p.png"), "--json-out",
             str(link)], capsys, "--json-out", "--image", picture)
    assert not (tmp_path / "p.png").exists()


def test_export_refuses_to_replace_the_model_it_reads(tmp_path, capsys):
    model = tmp_path / "best.pt"
    shutil.copy(resolve_model("stage1"), model)
    for fmt in ("onnx", "torchscript"):
        refused(["--phase", "export", "--model", str(model), "--format", fmt, "--out", str(model)], capsys,
                "--out", "--model", model)
    # The spec written beside the export (OUT.json) is checked as well: here it is the model.
    spec_named = tmp_path / "m.pt.json"
    shutil.copy(model, spec_named)
    refused(["--phase", "export", "--model", str(spec_named), "--format", "torchscript", "--out",
             str(tmp_path / "m.pt")], capsys, "--out", "--model", spec_named)
    assert not (tmp_path / "m.pt").exists()


def test_test_outputs_refuse_the_list_they_read(sample_lists, tmp_path, capsys):
    lists = tmp_path / "lists"
    shutil.copytree(sample_lists, lists)
    test_list = lists / "test.txt"
    for flag in ("--predictions-out", "--metrics-json"):
        refused(["--phase", "test", "--model", "stage1", "--test-list", str(test_list), flag, str(test_list),
                 "--no-cache", "--quiet"], capsys, flag, "--test-list", test_list)
    refused(["--phase", "test", "--model", "stage1", "--test-pictures", str(lists / "test_pictures.txt"),
             "--pr-plot", str(lists / "test_pictures.txt"), "--quiet"], capsys, "--pr-plot", "--test-pictures",
            lists / "test_pictures.txt")


def test_a_run_folder_never_holds_the_runs_own_config(sample_lists, tmp_path, capsys):
    config = tmp_path / "runs" / "x" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"epochs": 1}))
    refused(["--phase", "train", "--config", str(config), "--list-dir", str(sample_lists), "--runs-dir",
             str(tmp_path / "runs"), "--run-name", "x", "--no-cache", "--quiet"], capsys, "--run-name", "--config",
            config)
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.json"]


def test_lists_refuse_an_annotation_file_they_read(sample_dir, tmp_path, capsys):
    pictures = tmp_path / "pictures"
    shutil.copytree(sample_dir / "I", pictures)
    labels = tmp_path / "out" / "train.txt"
    labels.parent.mkdir()
    # WFLW form: 98 points, box, six attributes, name
    line = " ".join(["10"] * 196 + ["5", "5", "100", "100"] + ["0"] * 6 + ["000719.jpg"])
    labels.write_text(line + "\n")
    before = labels.read_bytes()
    code = lists_main(["--format", "wflw", "--data-dir", str(pictures), "--labels", str(labels), "--out-dir",
                       str(labels.parent), "--verify", "0"])
    err = capsys.readouterr().err
    assert code == 2 and f"--out-dir {labels} is the --labels input; choose another path" in err
    assert labels.read_bytes() == before and sorted(p.name for p in labels.parent.iterdir()) == ["train.txt"]


def test_outputs_in_the_input_folder_take_names_no_input_has_and_are_not_read_again(picture, tmp_path, capsys):
    folder = picture.parent
    user_picture = write_image(folder / "face_landmarks.png", 160, 120)  # a picture of the user's own
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    args = ["--phase", "predict", "--image", str(folder), "--out", str(folder), "--align-out", str(folder),
            "--json-out", str(tmp_path / "faces.jsonl"), "--detector", "haar"]
    assert main(args) == 0
    capsys.readouterr()
    assert all((folder / name).read_bytes() == data for name, data in before.items())
    drawn = sorted(p.name for p in folder.iterdir() if p.name not in before)
    assert "face_landmarks-2.png" in drawn and "face_landmarks_landmarks.png" in drawn
    assert all(drawn_by_us(folder / name) for name in drawn) and not drawn_by_us(user_picture)
    records = [json.loads(line) for line in (tmp_path / "faces.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in records) == sorted(str(folder / n) for n in ("face.jpg", "face_landmarks.png"))
    # A second run reads the same two pictures, not the drawings of the first.
    assert main(args) == 0
    assert "that an earlier --phase predict drew" in capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "faces.jsonl").read_text().splitlines()]
    assert len(records) == 2


def test_a_cut_short_output_never_appears_under_its_final_name(tmp_path):
    part = PartFile(tmp_path / "out.jsonl")
    part.part.write_text('{"frame": 0}\n{"fra')
    part.discard()
    assert list(tmp_path.iterdir()) == []
    writer = VideoWriter(tmp_path / "v.mp4", 25.0, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    assert not (tmp_path / "v.mp4").exists()  # still being written
    writer.close(complete=False)
    assert list(tmp_path.iterdir()) == []
    writer = VideoWriter(tmp_path / "v.mp4", 25.0, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_the_gate_compares_files_not_spellings(tmp_path):
    outputs = Outputs()
    given = write_image(tmp_path / "a" / "x.png")
    outputs.reads("--image", given)
    outputs.check("--out", tmp_path / "a" / "y.png")  # another file: fine
    for same in (tmp_path / "a" / "." / "x.png", tmp_path / "b" / ".." / "a" / "x.png"):
        with pytest.raises(UsageError, match=r"--out .* is the --image input"):
            outputs.check("--out", same)
    with pytest.raises(UsageError):
        outputs.write_text("--json-out", given, "{}")
    assert load_image(given).shape == (100, 120, 3)


def test_a_folder_of_label_folders_under_test_is_not_written_over(sample_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    label = data / "I" / "label.txt"
    refused(["--phase", "test", "--test-pictures", str(data), "--metrics-json", str(label), "--quiet"], capsys,
            "--metrics-json", "--test-pictures", label)


def test_two_outputs_of_one_command_may_not_share_a_path(picture, tmp_path, capsys):
    out = tmp_path / "p.png"
    code, err = run_main(["--phase", "predict", "--image", str(picture), "--out", str(out), "--json-out", str(out)],
                         capsys)
    assert code == 2 and f"--json-out {out} is also the --out output; choose another path" in err
    assert not out.exists()
