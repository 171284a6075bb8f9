"""Overlap-tile prediction: tiles stitch to exactly what one pass over the (padded) image gives."""
import numpy as np
import pytest
from PIL import Image

import minidl
import minidl.functional as F
import unet.predict as predict_module
from unet import FCN, UNet
from unet.predict import predict_probabilities, predict_whole, save_prediction


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _forward(model, x):
    """softmax(model(x)) for one (C, h, w) array, computed directly (not through unet.predict)."""
    model.eval()
    with minidl.no_grad():
        return F.softmax(model(minidl.tensor(x[None])), dim=1).numpy()[0]


def test_valid_tiling_covers_odd_image_and_equals_direct_pass_on_mirrored_image():
    model = UNet(1, 3, base_channels=4, depth=3, padding="valid")
    H, W = 37, 45
    image = _image((1, H, W))
    # expected, by hand: margin m from the model's own sizes, mirror by m (+ to a size it takes)
    t = model.valid_input_size(1)
    m = (t - model.output_size(t)) // 2                       # 20 for depth 3
    size_h, size_w = model.valid_input_size((H + 2 * m, W + 2 * m))
    padded = np.pad(image, ((0, 0), (m, size_h - H - m), (m, size_w - W - m)), mode="reflect")
    expected = _forward(model, padded)[:, :H, :W]
    # tiles of 52 (output 12, step 12) and 60 (output 20, step 20): several tiles per side
    probs = predict_probabilities(model, image, tile_size=(52, 60), batch_size=3)
    assert probs.shape == (3, H, W) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(predict_whole(model, image), expected, atol=1e-5)


def test_valid_tiling_does_not_depend_on_tile_or_batch_size():
    model = UNet(1, 2, base_channels=2, depth=2, padding="valid")
    image = _image((1, 29, 23), seed=1)
    a = predict_probabilities(model, image, tile_size=24, batch_size=1)
    b = predict_probabilities(model, image, tile_size=(36, 28), batch_size=5)
    c = predict_probabilities(model, image)                     # default: one tile
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_valid_tiles_step_on_the_pooling_grid():
    """Depth 4: a 100-pixel tile gives 12 output pixels, not a multiple of the pooling stride 8.
    Tiles must then step by 8 (overlapping outputs), else max-pooling sees a shifted grid and
    the tiles disagree with the direct pass by ~0.1."""
    model = UNet(1, 2, base_channels=2, depth=4, padding="valid")
    assert model.output_size(100) == 12
    image = _image((1, 37, 45), seed=6)
    m = (100 - 12) // 2
    size_h, size_w = model.valid_input_size((37 + 2 * m, 45 + 2 * m))
    padded = np.pad(image, ((0, 0), (m, size_h - 37 - m), (m, size_w - 45 - m)), mode="reflect")
    expected = _forward(model, padded)[:, :37, :45]
    np.testing.assert_allclose(predict_probabilities(model, image, tile_size=100), expected, atol=1e-5)


def test_same_padding_tiled_equals_whole_image_for_an_odd_image():
    model = UNet(1, 2, base_channels=4, depth=3, padding="same")
    H, W = 131, 157                                             # neither divisible by 4
    image = _image((1, H, W), seed=2)
    # expected, by hand: mirror at the bottom/right to multiples of 4, one pass, crop
    padded = np.pad(image, ((0, 0), (0, 132 - H), (0, 160 - W)), mode="reflect")
    expected = _forward(model, padded)[:, :H, :W]
    np.testing.assert_allclose(predict_whole(model, image), expected, atol=1e-6)
    probs = predict_probabilities(model, image, tile_size=128, batch_size=4)  # 3 x 3 tiles
    assert probs.shape == (2, H, W)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_same_padding_needs_the_context_margin(monkeypatch):
    """With no margin the zero padding at the tiles' inner edges leaks into the result: the
    equality above is a real check, not a coincidence."""
    model = UNet(1, 2, base_channels=4, depth=3, padding="same")
    image = _image((1, 64, 64), seed=3)
    whole = predict_whole(model, image)
    monkeypatch.setattr(predict_module, "context_and_stride", lambda model: (0, 4))
    tiled = predict_probabilities(model, image, tile_size=16)
    assert np.abs(tiled - whole).max() > 1e-3


def test_fcn_tiled_equals_whole_image():
    model = FCN(n_classes=3, variant="32s", in_channels=1, width=1 / 32)
    rng = np.random.default_rng(4)
    for name, param in model.named_parameters():      # score layers start at zero: make them speak
        if "score" in name:
            param.data[...] = rng.standard_normal(param.shape).astype(np.float32)
    image = _image((1, 1050, 21), seed=5)
    whole = _forward(model, image)                    # FCN takes any size: the plain pass
    assert whole.std() > 0.05
    tile = predict_module._Geometry(model).margin * 2 + 32      # the smallest tile: 3 tiles high
    probs = predict_probabilities(model, image, tile_size=(tile, None), batch_size=2)
    np.testing.assert_allclose(probs, whole, atol=1e-5)


def test_eval_mode_no_grad_and_training_mode_restored():
    model = UNet(1, 2, base_channels=2, depth=2, padding="same", dropout=0.5)
    model.train()
    image = _image((1, 16, 16))
    a = predict_probabilities(model, image)
    b = predict_probabilities(model, image)
    np.testing.assert_array_equal(a, b)              # dropout off: eval mode
    assert model.training                            # and restored afterwards
    assert all(p.grad is None for p in model.parameters())


def test_two_dimensional_image_is_one_channel():
    model = UNet(1, 2, base_channels=2, depth=2, padding="same")
    image = _image((1, 12, 20))
    np.testing.assert_array_equal(predict_probabilities(model, image[0]), predict_probabilities(model, image))


def test_errors_name_the_function_and_the_shapes():
    model = UNet(1, 2, base_channels=2, depth=2, padding="valid")
    with pytest.raises(ValueError, match=r"predict_probabilities: expected an image of shape \(1, H, W\) "
                                         r"for UNet\(in_channels=1\), got shape \(3, 20, 20\)"):
        predict_probabilities(model, _image((3, 20, 20)))
    with pytest.raises(ValueError, match=r"predict_whole: expected an image of shape \(1, H, W\)"
                                         r".*\(2, 1, 20, 20\)"):
        predict_whole(model, _image((2, 1, 20, 20)))
    # depth 2, valid: n - 4 must be even for the max-pool, so 26 is the next size after 25
    with pytest.raises(ValueError, match="predict_probabilities: the network cannot take a tile height "
                                         "of 25; the next size it takes is 26"):
        predict_probabilities(model, _image((1, 20, 20)), tile_size=25)
    # the paper's depth 5: 188 -> 4 output pixels, fewer than the stride 16; 204 -> 20 is enough
    paper = UNet(1, 2, base_channels=1, depth=5, padding="valid")
    with pytest.raises(ValueError, match="predict_probabilities: a tile width of 188 leaves fewer than "
                                         "16 output pixels between the context margins of 92 pixels; "
                                         "use at least 204"):
        predict_probabilities(paper, _image((1, 20, 20)), tile_size=(204, 188))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        predict_probabilities(model, _image((1, 20, 20)), batch_size=0)
    with pytest.raises(TypeError, match="predict: the model must be a unet.UNet, a unet.FCN or a model of unet.zoo, got Conv2d"):
        predict_probabilities(minidl.nn.Conv2d(1, 2, 3), _image((1, 20, 20)))
    same = UNet(1, 2, base_channels=2, depth=3, padding="same")
    with pytest.raises(ValueError, match="cannot take a tile height of 70; the next size it takes is 72"):
        predict_probabilities(same, _image((1, 20, 20)), tile_size=70)
    fcn = FCN(n_classes=2, in_channels=1, width=1 / 32)
    with pytest.raises(ValueError, match="tile height of 1000 is not a multiple of the network's stride 32"):
        predict_probabilities(fcn, _image((1, 20, 20)), tile_size=1000)


def test_save_prediction_writes_three_pngs(tmp_path):
    image = _image((1, 6, 8))
    p1 = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    probs = np.stack([1 - p1, p1])                                   # (2, 6, 8)
    paths = save_prediction(tmp_path / "out", "cell", image, probs)
    assert sorted(paths) == ["mask", "overlay", "prob"]
    assert paths["mask"].endswith("cell_mask.png")
    prob = np.array(Image.open(paths["prob"]))
    np.testing.assert_array_equal(prob, np.round(p1 * 255).astype(np.uint8))
    mask = np.array(Image.open(paths["mask"]))
    np.testing.assert_array_equal(mask, np.where(p1 > 0.5, 255, 0))  # argmax, ISBI 0/255
    overlay = Image.open(paths["overlay"])
    assert overlay.mode == "RGB" and overlay.size == (8, 6)


def test_save_prediction_multiclass_and_errors(tmp_path):
    probs = np.zeros((3, 2, 2), dtype=np.float32)
    probs[[0, 1, 2, 2], [0, 0, 1, 1], [0, 1, 0, 1]] = 1               # labels [[0, 1], [2, 2]]
    paths = save_prediction(tmp_path, "rgb", _image((3, 2, 2)), probs)
    assert np.array(Image.open(paths["mask"])).tolist() == [[0, 1], [2, 2]]
    with pytest.raises(ValueError, match=r"save_prediction: expected image \(C, H, W\) and probs \(K, H, W\) "
                                         r"of the same H, W, got image \(1, 3, 3\) and probs \(3, 2, 2\)"):
        save_prediction(tmp_path, "x", _image((1, 3, 3)), probs)
