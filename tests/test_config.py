"""Settings are declared once: flags come from the config's fields, presets can build on a base."""

import dataclasses
import importlib
import re
from pathlib import Path

import pytest
import torch

from landmarks.config import AugmentSettings, Config, load_config_file
from landmarks.data.scheme import load_scheme
from landmarks.detector import build_parser, training_config
from landmarks.errors import UsageError
from landmarks.spec import ModelSpec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_setting_has_a_flag_whose_help_ends_with_its_default():
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    for cls in (Config, AugmentSettings):
        for item in dataclasses.fields(cls):
            if item.name == "augment":
                continue
            action = actions[item.name]
            assert action.option_strings[0] == "--" + item.name.replace("_", "-")
            assert action.help.endswith(")") and "(default: " in action.help, item.name
    assert "(default: 40)" in actions["epochs"].help and "(default: stage1)" in actions["net"].help
    assert sorted(actions["net"].choices) == actions["net"].choices and "stage1_wide" in actions["net"].choices


@pytest.mark.parametrize("module", ["landmarks.detector", "landmarks.commands.lists"])
def test_help_states_each_default_once(module):
    text = importlib.import_module(module).build_parser().format_help()
    entries = re.split(r"\n  (?=-)|\n\n", text)  # one entry per flag or group title
    assert len(entries) > 10
    for entry in entries:
        assert entry.count("default:") <= 1, entry
    assert "(default: None)" not in text


def test_flags_parse_to_config_values_over_a_preset(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('net = "stage1_bn"\nepochs = 7\nclass_weights = [1.0, 2.0]\n[augment]\nflip = 0.5\n')
    args = build_parser().parse_args(["--phase", "train", "--config", str(preset), "--epochs", "3",
                                      "--no-normalize", "--class-weights", "1,4", "--aux", "yaw=0.3,smile",
                                      "--rotation", "9"])
    config = training_config(args)
    assert (config.net, config.epochs, config.normalize, config.class_weights) == ("stage1_bn", 3, False, (1.0, 4.0))
    assert config.augment.flip == 0.5 and config.augment.rotation == 9.0
    assert config.aux_weights() == {"yaw": 0.3, "smile": config.aux_weight}


def test_a_preset_builds_on_its_base_and_cycles_are_refused(tmp_path):
    (tmp_path / "base.toml").write_text('loss = "wing"\nepochs = 60\n[augment]\nflip = 0.5\nrotation = 15.0\n')
    (tmp_path / "child.toml").write_text('base = "base.toml"\nepochs = 20\n[augment]\nrotation = 5.0\n')
    config = load_config_file(tmp_path / "child.toml")
    assert (config.loss, config.epochs, config.augment.flip, config.augment.rotation) == ("wing", 20, 0.5, 5.0)
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(UsageError, match="include each other in a circle"):
        load_config_file(tmp_path / "a.toml")


def test_shipped_presets_share_the_augmentation_block():
    stage2 = load_config_file(CONFIGS / "stage2_regression.toml")
    heatmap = load_config_file(CONFIGS / "stage2_heatmap.toml")
    shared = load_config_file(CONFIGS / "augment.toml").augment
    assert stage2.augment == heatmap.augment == shared
    # A preset changes one augmentation setting and keeps the rest of its base's block.
    simcc = load_config_file(CONFIGS / "stage2.toml")
    assert simcc.augment.erase == 0.5 and simcc.augment.rotation == shared.rotation
    assert heatmap.net == "heatmap" and heatmap.loss == "wing"
    assert sum("[augment]" in p.read_text() for p in CONFIGS.glob("*.toml")) == 1


def test_the_300w_recipe_runs_one_pass_a_face_whatever_it_starts_from():
    # A finetune takes the starting model's settings; a start with test-time flip would double
    # the recipe's time a face (its 1 ms) and read 0.1 point better, as a run once did.
    recipe = CONFIGS / "300w.toml"
    args = build_parser().parse_args(["--phase", "finetune", "--config", str(recipe)])
    for start in (Config(test_flip=True), Config(test_flip=False)):
        config = training_config(args, start)
        assert config.test_flip is False and config.input_size == 128 and config.head == "simcc_gau"
    flipped = build_parser().parse_args(["--phase", "finetune", "--config", str(recipe), "--test-flip"])
    assert training_config(flipped, Config()).test_flip is True  # the flag still rules


def test_the_192_px_recipe_is_the_300w_recipe_at_192_px():
    recipe = load_config_file(CONFIGS / "300w.toml")
    larger = load_config_file(CONFIGS / "300w-192.toml")
    assert larger.input_size == 192 and recipe.input_size == 128
    assert dataclasses.replace(larger, input_size=128) == recipe


@pytest.mark.parametrize("values, message", [
    ({"net": "vgg"}, "net 'vgg' is not one of"),
    ({"nets": "stage1"}, "unknown setting nets"),
    ({"augment": {"blur": 1}}, "unknown augment setting blur"),
    ({"face_threshold": 2}, "face_threshold must be between 0 and 1"),
    ({"picture_zoom": 0.4}, "picture_zoom must be at least 0.5"),
    ({"aux": ["yaw=high"]}, "'yaw=high' is not name or name=weight"),
    ({"simcc_features": 0}, "simcc_features must be at least 1"),
])
def test_bad_settings_name_the_problem(values, message):
    from landmarks.config import config_from_dict
    with pytest.raises(UsageError, match=message):
        config_from_dict(values)


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_simcc_sigma_sets_the_spread_of_the_training_labels(sigma):
    spec = ModelSpec(Config(net="stage1", head="simcc", simcc_sigma=sigma), load_scheme("course21"))
    codec = spec.codec(spec.build())
    label_x, _ = codec.encode(torch.full((1, 1, 2), 0.5), 224)  # the crop's centre, between bins 111 and 112
    centres = torch.arange(224) + 0.5
    mean = (label_x[0, 0] * centres).sum()
    spread = ((label_x[0, 0] * (centres - mean) ** 2).sum()).sqrt()
    assert abs(float(mean) - 112) < 1e-3 and abs(float(spread) - sigma) < 0.05


@pytest.mark.parametrize("sigma", [1.5, 6.0])
def test_simcc_loss_is_the_cross_entropy_to_the_whole_gaussian_label(sigma):
    """The loss reads each label where it is not negligible; on every bin it must be the Gaussian
    normalised over the crop, and the loss the cross entropy to it, points off the crop included."""
    from landmarks.codecs import build_codec

    codec = build_codec("simcc", 4, simcc_sigma=sigma)
    shares = torch.tensor([[[0.5, 0.0013], [-0.2, 1.3], [0.999, 0.31], [0.02, 0.7]]])
    bins = 224
    centres = torch.arange(bins) + 0.5
    at = shares.clamp(0.5 / bins, 1 - 0.5 / bins) * bins
    whole = torch.exp(-0.5 * ((centres - at[..., None]) / sigma) ** 2)
    whole = whole / whole.sum(-1, keepdim=True)  # [1, 4, 2, bins]
    label_x, label_y = codec.encode(shares, bins)
    assert torch.allclose(label_x, whole[..., 0, :], atol=1e-7) and torch.allclose(label_y, whole[..., 1, :], atol=1e-7)
    torch.manual_seed(0)
    raw = {"x": torch.randn(1, 4, bins), "y": torch.randn(1, 4, bins)}
    expected = -(whole[..., 0, :] * raw["x"].log_softmax(-1)).sum(-1) - (whole[..., 1, :] * raw["y"].log_softmax(-1)).sum(-1)
    assert torch.allclose(codec.loss(raw, shares * 112, 112, None, reduction="none"), expected.mean(-1), atol=1e-5)


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_simcc_coord_weight_adds_the_point_loss_on_the_decoded_points(weight):
    from landmarks.codecs import build_codec
    from landmarks.net.losses import point_loss

    spec = ModelSpec(Config(net="stage1", head="simcc", simcc_coord_weight=weight), load_scheme("five"))
    codec = spec.codec(spec.build())
    torch.manual_seed(0)
    raw = {"x": torch.randn(3, 5, 224), "y": torch.randn(3, 5, 224)}
    target = torch.rand(3, 5, 2) * 100 + 6
    wing = point_loss("wing")
    plain = build_codec("simcc", 5).loss(raw, target, 112, wing, reduction="none")
    on_points = wing(codec.decode(raw) * 112, target, reduction="none")
    expected = plain + weight * on_points
    assert torch.allclose(codec.loss(raw, target, 112, wing, reduction="none"), expected)
    assert (on_points > 0).all()


@pytest.mark.parametrize("head", ["simcc_map", "simcc_fine", "simcc_gau"])
def test_simcc_features_sizes_the_vector_each_point_map_is_read_into(head):
    from landmarks.net.nets import Stage1Net

    spec = ModelSpec(Config(net="stage1_wide", head=head, simcc_features=32, input_size=96), load_scheme("five"))
    net = spec.build().eval()
    assert net.point_vector[0].out_features == 32 and net.bins_x.in_features == 32 == net.bins_y.in_features
    assert spec.inference_model(net)(torch.rand(2, 1, 96, 96)).shape == (2, 5, 2)
    wide = ModelSpec(Config(net="stage1_wide", head=head, input_size=96), load_scheme("five")).build()
    assert wide.point_vector[0].out_features == Stage1Net.POINT_FEATURES  # the config's default is the net's
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in wide.parameters())


def test_simcc_features_is_refused_for_a_head_it_does_not_size():
    spec = ModelSpec(Config(net="stage1", head="simcc", simcc_features=32), load_scheme("course21"))
    with pytest.raises(UsageError, match="--simcc-features sizes the simcc_map, simcc_fine and simcc_gau heads only"):
        spec.build()
