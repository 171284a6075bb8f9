"""Augmenter.skip draws what Augmenter.__call__ draws, so that a rank of ``mpiexec -n N unet
train`` that makes only its share of a batch gets exactly those rows of the whole batch."""

import itertools

import numpy as np
import pytest

from unet.augment import Augmenter
from unet.data import SegmentationData
from unet.train import BatchMaker, TrainConfig

SETTINGS = [dict(flip=f, rot90=r, jitter=j, elastic=e, crop_size=c)
            for f, r, j, e, c in itertools.product((False, True), (False, True), (0.0, 0.1),
                                                   (False, True), (None, 16, (16, 12)))]


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_skip_leaves_the_generator_where_the_call_does(settings):
    augment = Augmenter(**settings)
    image = np.random.default_rng(1).random((2, 21, 19)).astype(np.float32)   # (C, H, W), odd sizes
    mask = (image[0] > 0.5).astype(np.int64)
    made, skipped = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(3):
        augment(image, mask, mask.astype(np.float32), rng=made)
        augment.skip(image.shape, skipped)
        assert skipped.bit_generator.state == made.bit_generator.state
    assert made.random() == skipped.random()


@pytest.mark.parametrize("keep", [(0, 2), (2, 3), (1, 3), (0, 3)])
def test_a_share_of_a_batch_is_those_rows_of_the_whole_batch(keep):
    config = TrainConfig(synthetic=5, synthetic_size=(40, 40), depth=2, base_channels=4,
                         batch_size=3, crop_size=32, border_weight=True)
    data = SegmentationData.synthetic(5, (40, 40), seed=0)
    maker = BatchMaker(data, config, 32, 32)
    order = maker.order_of_epoch(0)
    whole = maker.batch_at(0, 1, order)
    share = maker.batch_at(0, 1, order, keep)
    for full, part in zip(whole, share):
        np.testing.assert_array_equal(part, full[keep[0]:keep[1]])
