r"""jakeret/tf_unet: the TensorFlow U-Net of Akeret et al. (radio-astronomy RFI mitigation, 2017).

``create_conv_net(x, keep_prob, channels, n_class, layers=3, features_root=16,
filter_size=3, pool_size=2)`` of tf_unet/unet.py, layer for layer:

    down_conv_i  (i = 0 .. layers-1, features 2**i * features_root):
                 conv (valid) -> dropout(keep_prob) -> ReLU -> conv (valid) -> dropout -> ReLU,
                 then a 2x2 max-pool (not after the last level)
    up_conv_i    (i = layers-2 .. 0, from 2**(i+1) * features_root features):
                 2x2 stride-2 transposed conv halving the features, + bias, ReLU;
                 crop_and_concat (the skip tensor centre-cropped, FIRST);
                 conv -> dropout -> ReLU -> conv -> dropout -> ReLU
    output_map   1x1 conv to n_class, then ReLU (tf_unet's output map is ``relu(conv)``;
                 ``output_relu=False`` leaves it out)

Every convolution is VALID, so the output is smaller than the input: each level's two
convolutions take ``2 * (filter_size - 1)`` pixels off (4 for 3x3), and every max-pool must see
an even size (:meth:`TfUNet.valid_input_size`). tf_unet's ``deconv2d`` builds its output shape
as twice the input, so its ``pool_size`` can only be 2; it is not an argument here.

Dropout: ``tf.nn.dropout(x, keep_prob)`` keeps an entry with probability ``keep_prob`` and
scales it by ``1 / keep_prob``: ``nn.Dropout(p=1 - keep_prob)``. tf_unet trains with
``keep_prob=0.75`` (``Trainer.train(dropout=0.75)``) and predicts with 1 (``model.eval()``).

Initialisation (``weight_variable``, ``bias_variable``): weights ``tf.truncated_normal`` (a
normal redrawn outside 2 standard deviations) with std ``sqrt(2 / (filter_size**2 *
features))``, where ``features`` is the level's feature count (down_conv_i: ``2**i * root``;
up_conv_i: ``2**(i+1) * root``, also for its transposed conv; the output map uses the last
std computed, that of up_conv_0); every bias 0.1.

Loss (``Unet._get_cost``): :func:`tf_unet_loss` (pixel-wise softmax cross-entropy, with
optional class weights, or the Dice coefficient). Recipe (``Trainer``): its default optimizer
"momentum", learning rate 0.2, momentum 0.2 (the rate decays by 0.95 per epoch in tf_unet;
``RECIPE`` records the constant part).
"""
import math

import minidl
import minidl.functional as F
import minidl.nn as nn

from .seed_sizes import SizedByRule, SizeRule

__all__ = ["TfUNet", "tf_unet_loss", "tf_truncated_normal_"]

_COSTS = ("cross_entropy", "dice_coefficient")


def tf_truncated_normal_(module, std, bias=0.1):
    """``tf.truncated_normal(shape, stddev=std)`` for the weight (N(0, std^2), values beyond
    2 std redrawn) and ``tf.constant(0.1)`` for the bias."""
    nn.init.trunc_normal_(module.weight, 0.0, std, a=-2 * std, b=2 * std)
    nn.init.constant_(module.bias, bias)


def _conv_block(c_in, c_out, filter_size, keep_prob, std):
    """(valid conv -> dropout -> ReLU) twice: (N, c_in, H, W) -> (N, c_out, H - 2(K-1), W - 2(K-1))."""
    layers = []
    for c in (c_in, c_out):
        conv = nn.Conv2d(c, c_out, filter_size)
        tf_truncated_normal_(conv, std)
        layers += [conv, nn.Dropout(1.0 - keep_prob), nn.ReLU()]
    return nn.Sequential(*layers)


class TfUp(nn.Module):
    r"""One ``up_conv_i`` of tf_unet: (N, F, h, w), skip (N, F/2, Hs, Ws) -> (N, F/2, 2h - 2(K-1), ...).

    ``deconv``: ConvTranspose2d(F, F/2, 2, stride=2) + ReLU -> (N, F/2, 2h, 2w);
    ``crop_and_concat``: the skip tensor's centre (offset ((Hs - 2h)//2, (Ws - 2w)//2)) first,
    then the up-sampled tensor -> (N, F, 2h, 2w); ``conv``: the level's two convolutions.
    """

    def __init__(self, features, filter_size, keep_prob, std):
        super().__init__()
        deconv = nn.ConvTranspose2d(features, features // 2, 2, stride=2)
        tf_truncated_normal_(deconv, std)
        self.deconv = nn.Sequential(deconv, nn.ReLU())
        self.conv = _conv_block(features, features // 2, filter_size, keep_prob, std)

    def forward(self, x, skip):
        x = self.deconv(x)                                          # (N, F/2, 2h, 2w)
        skip = F.center_crop(skip, tuple(x.shape[-2:]))             # (N, F/2, 2h, 2w)
        return self.conv(minidl.cat([skip, x], dim=1))              # (N, F/2, 2h - 4, 2w - 4)


class TfUNet(SizedByRule, nn.Module):
    r"""tf_unet's ``create_conv_net`` (module docstring).

    Args:
        in_channels: image channels (tf_unet's ``channels``, 3 by default in ``Unet``).
        n_classes: output labels (``n_class``, 2).
        width: ``features_root``, the features of the top level (16).
        layers: levels of the U (3).
        filter_size: the convolutions' kernel size (3).
        keep_prob: the dropout keep probability used in training (0.75; 1 = no dropout).
        output_relu: tf_unet's ReLU on the output map (True).

    Shapes: x (N, in_channels, H, W) -> logits (N, n_classes, OH, OW), ``(OH, OW) =
    self.output_size((H, W))``, smaller than the input (``TfUNet().output_size(572) == 532``:
    572 -> 568 | 284 -> 280 | 140 -> 136, up 272 -> 268, up 536 -> 532).

    Modules (tf_unet's name scopes): ``down_conv_0`` ... ``down_conv_{layers-1}``, ``pool``,
    ``up_conv_{layers-2}`` ... ``up_conv_0`` (:class:`TfUp`), ``output_map``.
    """

    SOURCE = "jakeret/tf_unet (TensorFlow; Akeret et al. 2017)"
    LOSS = "ce"
    RECIPE = dict(optimizer="sgd", lr=0.2, momentum=0.2, weight_decay=0.0)

    def __init__(self, in_channels=3, n_classes=2, width=16, layers=3, filter_size=3,
                 keep_prob=0.75, output_relu=True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("width", width),
                            ("layers", layers), ("filter_size", filter_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TfUNet: {name} must be an int >= 1, got {name}={value!r}")
        if isinstance(keep_prob, bool) or not isinstance(keep_prob, (int, float)) or not 0 < keep_prob <= 1:
            raise ValueError(f"TfUNet: keep_prob must be a probability in (0, 1], got keep_prob={keep_prob!r}")
        self.in_channels, self.n_classes, self.width, self.layers = in_channels, n_classes, width, layers
        self.filter_size, self.keep_prob, self.output_relu = filter_size, keep_prob, output_relu

        c_in = in_channels
        for i in range(layers):                                     # down layers
            features = 2 ** i * width
            std = math.sqrt(2 / (filter_size ** 2 * features))
            self.add_module(f"down_conv_{i}", _conv_block(c_in, features, filter_size, keep_prob, std))
            c_in = features
        self.pool = nn.MaxPool2d(2)
        for i in range(layers - 2, -1, -1):                         # up layers
            features = 2 ** (i + 1) * width
            std = math.sqrt(2 / (filter_size ** 2 * features))
            self.add_module(f"up_conv_{i}", TfUp(features, filter_size, keep_prob, std))
        self.output_map = nn.Conv2d(width, n_classes, 1)
        tf_truncated_normal_(self.output_map, std)                  # the last std computed
        self._sizes = SizeRule("TfUNet", levels=layers, shrink=2 * (filter_size - 1), pool=2)

    def forward(self, x):
        """x (N, in_channels, H, W) -> logits (N, n_classes, OH, OW)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"TfUNet: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self.output_size(tuple(x.shape[-2:]))                       # clear error for unusable sizes
        skips = []
        for i in range(self.layers):
            x = getattr(self, f"down_conv_{i}")(x)                  # dw_h_convs[i]
            skips.append(x)
            if i < self.layers - 1:
                x = self.pool(x)
        for i in range(self.layers - 2, -1, -1):
            x = getattr(self, f"up_conv_{i}")(x, skips[i])
        x = self.output_map(x)                                      # (N, n_classes, OH, OW)
        return F.relu(x) if self.output_relu else x


    def extra_repr(self):
        return (f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}, "
                f"layers={self.layers}, filter_size={self.filter_size}, keep_prob={self.keep_prob}, "
                f"output_relu={self.output_relu}")


def tf_unet_loss(logits, target, cost="cross_entropy", class_weights=None):
    r"""tf_unet's cost (``Unet._get_cost``) of ``logits`` (N, C, OH, OW).

    ``target``: class indices (N, H, W) (integers) or one-hot / soft labels (N, C, H, W), the
    labels tf_unet feeds. A target larger than the logits is centre-cropped to them first, as
    tf_unet's ``util.crop_to_shape`` does.

    * ``"cross_entropy"``: with ``p = softmax(logits)`` over the classes and the per-pixel loss
      ``l = -sum_c t_c log p_c``, the mean of ``l`` over every pixel. With ``class_weights``
      (a length-C sequence) each pixel's loss is multiplied by ``sum_c t_c w_c`` and the MEAN
      is taken over the pixels (not PyTorch's ``cross_entropy(weight=)``, which divides by the
      sum of the weights).
    * ``"dice_coefficient"``: ``-2 sum(p t) / (1e-5 + sum(p) + sum(t))``, sums over everything
      (batch, pixels, classes), as tf_unet's.

    (tf_unet's optional ``regularizer``, an L2 penalty, is the optimizer's ``weight_decay`` here.)
    """
    if cost not in _COSTS:
        raise ValueError(f"tf_unet_loss: cost must be 'cross_entropy' or 'dice_coefficient', got cost={cost!r}")
    if logits.ndim != 4:
        raise ValueError(f"tf_unet_loss: logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    n_class = logits.shape[1]
    if target.ndim == 3:                                            # class indices -> one-hot
        if target.dtype.kind == "f":
            raise ValueError("tf_unet_loss: a (N, H, W) target holds class indices and must be "
                             f"an integer tensor, got {target.dtype}")
        target = F.one_hot(target, n_class).permute(0, 3, 1, 2)     # (N, C, H, W)
    if target.ndim != 4 or target.shape[:2] != logits.shape[:2] or any(
            t < o for t, o in zip(target.shape[-2:], logits.shape[-2:])):
        raise ValueError(f"tf_unet_loss: target must be (N, H, W) class indices or (N, C, H, W) "
                         f"labels at least as large as the logits {tuple(logits.shape)}, got "
                         f"{tuple(target.shape)}")
    target = F.center_crop(target, tuple(logits.shape[-2:])).to(logits.dtype)
    if cost == "dice_coefficient":
        prediction = F.softmax(logits, dim=1)
        intersection = (prediction * target).sum()
        union = 1e-5 + prediction.sum() + target.sum()
        return -(2 * intersection / union)
    loss_map = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)  # (N, OH, OW)
    if class_weights is not None:
        weights = minidl.tensor(list(class_weights), dtype=logits.dtype)
        if weights.shape != (n_class,):
            raise ValueError(f"tf_unet_loss: class_weights must have one weight per class "
                             f"({n_class}), got {len(class_weights)}")
        weight_map = (target * weights.view(1, n_class, 1, 1)).sum(dim=1)   # (N, OH, OW)
        loss_map = loss_map * weight_map
    return loss_map.mean()
