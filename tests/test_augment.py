import torch

from landmarks.data.augment import (AugmentSettings, ColorJitter, RandomAffine, RandomEdgeCut, RandomHorizontalFlip,
                                     RandomErasing, RandomLowResolution, RandomPatchOcclusion,
                                     affine_warp, build_augmentation, hflip)
from landmarks.data.scheme import load_scheme

FLIP = load_scheme("course21").flip_permutation


def image_with_dots(points, size=112, channels=1):
    image = torch.zeros(1, channels, size, size)
    for x, y in points:
        image[0, :, int(y), int(x)] = 255.0
    return image


def random_points(generator, low=20, high=90):
    return (low + (high - low) * torch.rand(1, 21, 2, generator=generator)).floor() + 0.5


def test_flipping_twice_is_the_identity():
    g = torch.Generator().manual_seed(0)
    image, points = torch.rand(3, 1, 112, 112, generator=g), random_points(g).repeat(3, 1, 1)
    twice = hflip(*hflip(image, points, FLIP), FLIP)
    assert torch.equal(twice[0], image) and torch.allclose(twice[1], points)


def test_after_a_flip_point_7_lands_where_the_mirrored_point_10_was():
    g = torch.Generator().manual_seed(1)
    points = random_points(g)
    image = image_with_dots(points[0])
    flipped_image, flipped = hflip(image, points, FLIP)
    assert torch.allclose(flipped[0, 6], torch.tensor([112 - points[0, 9, 0], points[0, 9, 1]]))
    x, y = flipped[0, 6]
    assert flipped_image[0, 0, int(y), int(x)] == 255.0  # the dot moved with its label


def test_random_flip_with_p_1_flips_every_sample_and_p_0_none():
    g = torch.Generator().manual_seed(2)
    image, points = torch.rand(4, 1, 8, 8, generator=g), torch.rand(4, 21, 2, generator=g) * 8
    assert torch.equal(RandomHorizontalFlip(FLIP, 1.0)(image, points, g)[0], image.flip(-1))
    assert torch.equal(RandomHorizontalFlip(FLIP, 0.0)(image, points, g)[0], image)


def test_a_rotation_keeps_the_points_on_the_pixels_they_marked():
    g = torch.Generator().manual_seed(3)
    dots = torch.tensor([[40.5, 30.5], [90.5, 70.5], [60.5, 100.5]])
    image = torch.zeros(1, 1, 140, 140)
    for x, y in dots:
        image[0, 0, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255.0  # 3x3 blobs
    points = torch.cat([dots, torch.full((18, 2), 70.0)])[None]
    warped, moved = RandomAffine(112, rotation=30, shift=0.05, scale=(0.9, 1.1))(image, points, g)
    for x, y in moved[0, :3]:
        assert warped[0, 0, int(y), int(x)] > 100, (x, y)


def test_affine_at_rest_is_a_centre_crop():
    g = torch.Generator().manual_seed(4)
    image, points = torch.rand(2, 1, 140, 140, generator=g), torch.rand(2, 21, 2, generator=g) * 140
    out, moved = RandomAffine(112)(image, points, g)
    # float32 grid coordinates: exact to about 1e-5 of a pixel; a pixel's shift would differ by ~0.3
    assert torch.allclose(out, image[..., 14:126, 14:126], atol=1e-4)
    assert torch.allclose(moved, points - 14, atol=1e-4)


def test_affine_warp_samples_where_the_map_points():
    image = torch.rand(2, 1, 20, 30, generator=torch.Generator().manual_seed(5))  # not square: w and h differ
    matrix = torch.tensor([[[1.0, 0.0, 5.0], [0.0, 1.0, 3.0]],  # output p shows input p + (5, 3)
                           [[0.0, 1.0, 2.0], [1.0, 0.0, 4.0]]])  # output (x, y) shows input (y + 2, x + 4)
    warped, _ = affine_warp(image, torch.zeros(2, 21, 2), matrix, 10)
    assert torch.allclose(warped[0, 0], image[0, 0, 3:13, 5:15], atol=1e-4)
    assert torch.allclose(warped[1, 0], image[1, 0, 4:14, 2:12].T, atol=1e-4)


def test_affine_warp_moves_points_by_the_inverse_map():
    image = torch.zeros(1, 1, 20, 20)
    matrix = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]])  # output p shows input p + (3, -2)
    _, moved = affine_warp(image, torch.tensor([[[10.0, 10.0]]]), matrix, 20)
    assert torch.allclose(moved, torch.tensor([[[7.0, 12.0]]]))


def test_color_jitter_keeps_points_and_range():
    g = torch.Generator().manual_seed(5)
    image, points = torch.rand(4, 1, 8, 8, generator=g) * 255, torch.rand(4, 21, 2, generator=g)
    out, same = ColorJitter(0.5, 0.5)(image, points, g)
    assert torch.equal(same, points) and out.min() >= 0 and out.max() <= 255
    assert not torch.allclose(out, image)


def test_low_resolution_blurs_the_chosen_samples_only_and_keeps_the_points():
    generator = torch.Generator().manual_seed(0)
    # A one-pixel checkerboard: all its energy is at the finest scale, which shrinking removes.
    board = ((torch.arange(112)[:, None] + torch.arange(112)[None, :]) % 2 * 255.0).expand(4, 1, 112, 112)
    points = torch.rand(4, 21, 2) * 112
    blurred, kept = RandomLowResolution(p=1.0, sizes=(16, 48))(board, points, generator)
    assert blurred.shape == board.shape and torch.equal(kept, points)
    assert (blurred.std(dim=(1, 2, 3)) < 0.2 * board.std(dim=(1, 2, 3))).all()
    assert abs(blurred.mean() - board.mean()) < 2.0  # brightness kept
    untouched, _ = RandomLowResolution(p=0.0)(board, points, generator)
    assert torch.equal(untouched, board)


def test_patch_occlusion_covers_one_rectangle_of_each_chosen_sample_with_another_samples_pixels():
    generator = torch.Generator().manual_seed(3)
    # Each sample a gradient of its own level, so a pasted pixel says which sample it came from.
    levels = torch.arange(8, dtype=torch.float32)[:, None, None, None] * 30
    image = (levels + torch.arange(112, dtype=torch.float32) / 112).expand(8, 1, 112, 112).contiguous()
    points = torch.rand(8, 21, 2) * 112
    occluded, kept = RandomPatchOcclusion(p=1.0)(image, points, generator)
    assert torch.equal(kept, points)
    for i in range(8):
        changed = (occluded[i, 0] != image[i, 0]).nonzero()
        rows, cols = changed[:, 0], changed[:, 1]
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert len(changed) == area, i  # one solid rectangle
        assert 0.02 * 112 * 112 * 0.9 <= area <= 0.2 * 112 * 112, (i, area)
        pasted = occluded[i, 0][occluded[i, 0] != image[i, 0]]
        source = int(pasted[0] // 30)
        assert source != i and (pasted // 30 == source).all()
    untouched, _ = RandomPatchOcclusion(p=0.0)(image, points, generator)
    assert torch.equal(untouched, image)
    assert isinstance(build_augmentation(AugmentSettings(occlude=0.5), 112).steps[-1], RandomPatchOcclusion)


def test_an_edge_cut_stretches_one_side_off_and_keeps_the_points_on_their_pixels():
    g = torch.Generator().manual_seed(5)
    dots = torch.tensor([[30.5, 40.5], [80.5, 90.5]])
    image = torch.zeros(16, 1, 112, 112)
    for x, y in dots:
        image[:, 0, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255.0  # 3x3 blobs
    points = dots[None].repeat(16, 1, 1)
    cut, moved = RandomEdgeCut(1.0)(image, points.clone(), g)
    for i in range(16):
        for x, y in moved[i]:
            if 0 <= x < 112 and 0 <= y < 112:  # a point in the strip cut off leaves the crop
                assert cut[i, 0, int(y), int(x)] > 100, (i, x, y)
        shift = moved[i] - points[i]
        assert (shift[:, 0].abs() < 1e-4).all() or (shift[:, 1].abs() < 1e-4).all()  # one axis stretched
    assert (moved - points).abs().amax(dim=(1, 2)).gt(1.0).sum() >= 8  # most samples visibly cut
    same, unmoved = RandomEdgeCut(0.0)(image, points.clone(), g)
    assert torch.equal(same, image) and torch.equal(unmoved, points)


def test_an_edge_cut_takes_at_most_its_widest_strip():
    g = torch.Generator().manual_seed(7)
    points = torch.tensor([[0.0, 0.0], [112.0, 112.0]])[None].repeat(64, 1, 1)  # the crop's corners
    image = torch.zeros(64, 1, 112, 112)
    for most in (0.1, 0.45):
        _, moved = RandomEdgeCut(1.0, most)(image, points.clone(), g)
        # The corners move apart by the stretch 1 / (1 - cut) along one axis.
        span = (moved[:, 1] - moved[:, 0]).amax(1) / 112
        assert (span <= 1 / (1 - most) + 1e-4).all() and span.max() > 1 / (1 - 0.8 * most)
    settings = AugmentSettings(edge=1.0, edge_most=0.45)
    assert build_augmentation(settings, 112).steps[-1].most == 0.45


def test_a_perspective_tilt_keeps_the_points_on_the_pixels_they_marked():
    g = torch.Generator().manual_seed(6)
    dots = torch.tensor([[30.5, 30.5], [110.5, 40.5], [50.5, 105.5], [100.5, 100.5]])
    image = torch.zeros(8, 1, 140, 140)
    for x, y in dots:
        image[:, 0, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255.0  # 3x3 blobs
    points = dots[None].repeat(8, 1, 1)
    warped, moved = RandomAffine(112, rotation=10, perspective=0.3)(image, points, g)
    assert not torch.allclose(moved, moved[:1])  # each sample tilted its own way
    for i in range(8):
        for x, y in moved[i]:
            assert warped[i, 0, int(y), int(x)] > 100, (i, x, y)


def test_a_tilt_magnifies_one_edge_and_shrinks_the_other_about_a_fixed_centre():
    affine = RandomAffine(100, perspective=0.4)
    # Draws until one tilt leans mostly right (x) with little nod (y).
    g = torch.Generator().manual_seed(0)
    matrix = next(m for m in (affine.matrices(1, (100, 100), g)[0] for _ in range(200))
                  if m[2, 0] * 50 > 0.25 and abs(m[2, 1] * 50) < 0.05)
    image = torch.zeros(1, 1, 100, 100)
    column = torch.tensor([[[50.0, 20.0], [50.0, 80.0]]])  # a vertical segment through the centre

    def height_at(x):
        _, moved = affine_warp(image, column + torch.tensor([x - 50.0, 0.0]), matrix[None], 100)
        return float(moved[0, 1, 1] - moved[0, 0, 1])

    _, centre = affine_warp(image, torch.tensor([[[50.0, 50.0]]]), matrix[None], 100)
    assert torch.allclose(centre, torch.tensor([[[50.0, 50.0]]]), atol=1e-3)
    assert height_at(90) > 60 > height_at(10)  # the right side nearer, larger; the left smaller
    assert AugmentSettings(perspective=0.2).geometric
    assert build_augmentation(AugmentSettings(perspective=0.2), 112).steps[0].perspective == 0.2


def test_light_settings_halve_the_geometry_drop_what_covers_or_cuts_and_keep_flip_and_colour():
    full = AugmentSettings(flip=0.5, rotation=30, shift=0.1, scale=0.2, perspective=0.2, brightness=0.2,
                           contrast=0.3, erase=0.5, occlude=0.4, lowres=0.3, edge=0.2)
    light = full.light()
    assert (light.rotation, light.shift, light.scale, light.perspective) == (15, 0.05, 0.1, 0.1)
    assert light.erase == light.occlude == light.lowres == light.edge == 0
    assert (light.flip, light.brightness, light.contrast) == (0.5, 0.2, 0.3)
    assert light.geometric and full.erase == 0.5  # a copy: the run's own settings stay


def test_random_erasing_fills_one_rectangle_of_the_chosen_crops_with_noise():
    image = torch.full((64, 3, 48, 40), 7.0)
    points = torch.rand(64, 5, 2) * 40
    erased, same_points = RandomErasing(0.5)(image, points, torch.Generator().manual_seed(1))
    assert torch.equal(same_points, points) and torch.equal(image, torch.full((64, 3, 48, 40), 7.0))  # input kept
    changed = (erased != 7.0).any(1)  # [B, H, W]
    hit = changed.flatten(1).any(1)
    assert 16 < int(hit.sum()) < 48  # about half the crops
    for mask in changed[hit]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.float().mean() > 0.99  # one filled rectangle
        assert 0.02 * 48 * 40 * 0.9 < box.numel() <= 0.2 * 48 * 40 + 48 + 40
    assert 0 <= float(erased.min()) and float(erased.max()) < 255
    assert abs(float(erased[~(erased == 7.0)].mean()) - 127.5) < 5  # uniform noise
