r"""Loss functions: one fused op per loss, with its gradient written out.

Every loss first computes one value per element, ``loss_i`` (per sample, or
per pixel for segmentation), then reduces:

    reduction   output                      g_i = dL/dloss_i
    'none'      loss_i (per element)        dy_i
    'sum'       sum_i loss_i                dy          (the same for every i)
    'mean'      sum_i loss_i / denominator  dy / denominator

The denominator is the number of elements, except where PyTorch defines it
otherwise: class-index cross-entropy / NLL divide by the sum of the weights of
the target classes of the non-ignored elements (the number of non-ignored
elements without ``weight``), and probability-target cross-entropy divides by
the number of distributions (numel / C). An empty denominator gives nan, as
0/0 does in PyTorch.

``'none'`` returns the per-element (per-pixel) loss, so a per-pixel weight map
can multiply it before a final ``.sum()`` / ``.mean()`` (the U-Net paper's
border weights).

Notation: x (N,C) or (N,C,d1,...) scores, class axis 1; an unbatched (C,)
input runs as N = 1. ``w_c`` class weights, ``t`` targets, ``g`` = dL/dloss_i.
Derivations: docs/gradients/{cross_entropy,nll_loss,binary_cross_entropy,
bce_with_logits,mse_loss,dice_loss}.md.
"""
import numpy as np

from ..autograd import Function
from ..backend import array_module
from .softmax import log_softmax_array

# PyTorch's floor for x (1 - x) in the BCE gradient: the float32 constant 1e-12f, which is
# 9.99999996e-13 even in float64 (so x = 0, t = 1 gives dx = -1.000000004e12, as in torch).
BCE_EPSILON = float(np.float32(1e-12))
BCE_LOG_FLOOR = -100.0  # PyTorch clamps log(x) and log(1 - x) at -100: loss <= 100 per element


# --- shared pieces ------------------------------------------------------------------------------
def reduce_loss(loss, reduction, denominator):
    """The reduced loss: ``loss`` itself, its sum, or its sum / ``denominator``."""
    xp = array_module(loss)
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return xp.asarray(total)
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty mean is nan, as in PyTorch
        return xp.asarray(total / denominator)


def upstream(dy, reduction, shape, denominator):
    """g = dL/dloss_i for every element (shape ``shape``), from ``dy`` = dL/d(output)."""
    xp = array_module(dy)
    if reduction == "none":
        return dy.reshape(shape)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            dy = dy / denominator
    return xp.broadcast_to(dy, shape)


def one_hot_array(t, num_classes, dtype):
    """onehot[n,c,...] = [t[n,...] == c]: (N,d1,...) class indices -> (N,C,d1,...)."""
    xp = array_module(t)
    classes = xp.arange(num_classes).reshape((1, num_classes) + (1,) * (t.ndim - 1))
    return (t[:, None] == classes).astype(dtype)


def class_weight_column(weight, ndim, dtype):
    """weight (C,) reshaped to (1,C,1,...) to broadcast along the class axis (None stays None)."""
    if weight is None:
        return None
    return weight.astype(dtype, copy=False).reshape((1, -1) + (1,) * (ndim - 2))


def class_targets(target, ignore_index, weight, dtype):
    r"""The pieces of a class-index target, each of the target's shape (N,d1,...).

    t      the target with ignored entries replaced by class 0, so it can index
    valid  [target != ignore_index]
    w_t    weight[t] where valid, else 0   (1 where valid when there is no weight)
    """
    xp = array_module(target)
    valid = target != ignore_index
    t = xp.where(valid, target, 0)
    w_t = weight.astype(dtype, copy=False)[t] if weight is not None else xp.ones(t.shape, dtype)
    return t, valid, w_t * valid


def _batched(x, target):
    """An unbatched (C,) input (and its target) as a batch of one."""
    return (x, target) if x.ndim > 1 else (x[None], target[None])


# --- cross-entropy and NLL ------------------------------------------------------------------------
class CrossEntropy(Function):
    r"""log_softmax + weighted NLL + label smoothing in one op, for class-index targets.

    Shapes: x (N,C) or (N,C,d1,...) logits (or (C,), run as N = 1); target (N,) or
            (N,d1,...) class indices; weight (C,) or None; y: target's shape for
            'none', else a scalar.
    Forward, per element i = (n,d1,...) with target class t, e = label_smoothing:
        logp[i,c] = log_softmax(x[i,:])_c
        v_i = [t != ignore_index]        w_i = weight[t] v_i       (weight = 1 when None)
        loss_i = (1 - e) (-w_i logp[i,t])  +  (e / C) v_i (-sum_c weight[c] logp[i,c])
        'mean' divides sum_i loss_i by sum_i w_i (both terms, as PyTorch).
    Backward, with p = softmax(x[i,:]) and d logp_c / d x_k = [c == k] - p_k:
        dx[i,k] = g_i (1 - e) w_i (p_k - [k == t])
                + g_i (e / C) v_i (p_k sum_c weight[c] - weight[k])
        Without weights or ignored entries: dx = g (p - ((1 - e) onehot(t) + e / C)),
        the softmax minus the smoothed target. Ignored elements get dx = 0.
    """

    def forward(self, x, target, weight, ignore_index, reduction, label_smoothing):
        x_shape, out_shape = x.shape, target.shape  # 'none' returns one loss per target entry
        x, target = _batched(x, target)  # (N,C,d...), (N,d...)
        num_classes = x.shape[1]
        logp = log_softmax_array(x, axis=1)  # (N,C,d...)
        t, valid, w_t = class_targets(target, ignore_index, weight, x.dtype)  # (N,d...)
        logp_t = array_module(x).take_along_axis(logp, t[:, None], axis=1)[:, 0]  # logp[i, t_i]
        denominator = w_t.sum()
        y = reduce_loss(-w_t * logp_t, reduction, denominator)  # the weighted NLL of the target class
        w_col = class_weight_column(weight, x.ndim, x.dtype)  # (1,C,1,...) or None
        if label_smoothing > 0:  # each term reduced on its own, as PyTorch (it matters only for nan/inf)
            per_class = logp if w_col is None else logp * w_col
            smooth = -per_class.sum(axis=1) * valid  # -sum_c weight[c] logp[i,c]
            y = (1 - label_smoothing) * y + (label_smoothing / num_classes) * reduce_loss(
                smooth, reduction, denominator)
        self.save(logp=logp, t=t, valid=valid, w_t=w_t, w_col=w_col, x_shape=x_shape,
                  reduction=reduction, denominator=denominator, label_smoothing=label_smoothing)
        return y.reshape(out_shape if reduction == "none" else ())

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        e, num_classes = s.label_smoothing, s.logp.shape[1]
        g = upstream(dy, s.reduction, s.t.shape, s.denominator)  # (N,d...)
        p = xp.exp(s.logp)  # softmax, (N,C,d...)
        onehot = one_hot_array(s.t, num_classes, p.dtype)
        with np.errstate(invalid="ignore"):  # inf * 0 = nan where a 'mean' divides by 0, as torch
            dx = (g * (1 - e) * s.w_t)[:, None] * (p - onehot)
            if e > 0:
                weight_sum = num_classes if s.w_col is None else s.w_col.sum()
                w_col = 1 if s.w_col is None else s.w_col
                dx = dx + (g * (e / num_classes) * s.valid)[:, None] * (p * weight_sum - w_col)
        dx = xp.where(s.valid[:, None], dx, 0)  # ignored elements do not contribute
        return dx.reshape(s.x_shape), None, None, None, None, None


class CrossEntropyProbs(Function):
    r"""log_softmax + cross-entropy against class probabilities (soft labels), fused.

    Shapes: x and target (N,C) or (N,C,d1,...) (or (C,), run as N = 1); weight (C,)
            or None; y: (N,d1,...) for 'none', else a scalar.
    Forward, e = label_smoothing, q = (1 - e) target + e / C (the smoothed target):
        loss_i = -sum_c weight[c] q[i,c] logp[i,c]
        'mean' divides by the number of distributions N*d1*... (= numel / C), as PyTorch.
    Backward, with a[i,c] = weight[c] q[i,c]:
        dx[i,k]      = g_i (p_k sum_c a[i,c] - a[i,k])     (= g (p - q) when weight is None
                                                           and each q sums to 1)
        dtarget[i,k] = -g_i (1 - e) weight[k] logp[i,k]
    """

    def forward(self, x, target, weight, reduction, label_smoothing):
        x_shape, out_shape = x.shape, x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        x, target = _batched(x, target)
        num_classes = x.shape[1]
        logp = log_softmax_array(x, axis=1)
        q = target.astype(x.dtype, copy=False)
        if label_smoothing > 0:
            q = q * (1 - label_smoothing) + label_smoothing / num_classes
        w_col = class_weight_column(weight, x.ndim, x.dtype)
        a = q if w_col is None else q * w_col  # (N,C,d...)
        loss = -(a * logp).sum(axis=1)  # (N,d...)
        self.save(logp=logp, a=a, w_col=w_col, x_shape=x_shape, target_shape=target.shape,
                  reduction=reduction, denominator=loss.size, label_smoothing=label_smoothing)
        return reduce_loss(loss, reduction, loss.size).reshape(out_shape if reduction == "none" else ())

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        loss_shape = s.logp.shape[:1] + s.logp.shape[2:]
        g = upstream(dy, s.reduction, loss_shape, s.denominator)[:, None]  # (N,1,d...)
        dx = dtarget = None
        if self.needs_input_grad[0]:
            p = xp.exp(s.logp)
            dx = (g * (p * s.a.sum(axis=1, keepdims=True) - s.a)).reshape(s.x_shape)
        if self.needs_input_grad[1]:
            dlogp_weight = -(1 - s.label_smoothing) * (1 if s.w_col is None else s.w_col)
            dtarget = (g * dlogp_weight * s.logp).reshape(s.x_shape)
        return dx, dtarget, None, None, None


class NLLLoss(Function):
    r"""Negative log-likelihood: minus the (weighted) input entry of the target class.

    Shapes: x (N,C) or (N,C,d1,...) log-probabilities (or (C,)); target (N,d1,...) class
            indices; weight (C,) or None; y: target's shape for 'none', else a scalar.
    Forward:  loss_i = -w_i x[i, t_i],  w_i = weight[t_i] [t_i != ignore_index];
              'mean' divides by sum_i w_i.
    Backward: dx[i,k] = -g_i w_i [k == t_i]   (one entry per element; ignored elements get 0)
    """

    def forward(self, x, target, weight, ignore_index, reduction):
        x_shape, out_shape = x.shape, target.shape
        x, target = _batched(x, target)
        t, valid, w_t = class_targets(target, ignore_index, weight, x.dtype)
        x_t = array_module(x).take_along_axis(x, t[:, None], axis=1)[:, 0]  # x[i, t_i]
        loss = -w_t * x_t
        denominator = w_t.sum()
        self.save(t=t, valid=valid, w_t=w_t, x_shape=x_shape, num_classes=x.shape[1],
                  reduction=reduction, denominator=denominator)
        return reduce_loss(loss, reduction, denominator).reshape(out_shape if reduction == "none" else ())

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        g = upstream(dy, s.reduction, s.t.shape, s.denominator)
        with np.errstate(invalid="ignore"):
            per_element = -g * s.w_t  # (N,d...): the gradient of x[i, t_i]
        hit = one_hot_array(s.t, s.num_classes, bool) & s.valid[:, None]  # (N,C,d...)
        dx = xp.where(hit, per_element[:, None], 0)
        return dx.reshape(s.x_shape), None, None, None, None


# --- binary losses -------------------------------------------------------------------------------
class BinaryCrossEntropy(Function):
    r"""Binary cross-entropy of probabilities x in [0, 1] against targets t in [0, 1].

    Shapes: x, target any shape (the same); weight broadcasts to it; y: x's shape for
            'none', else a scalar.
    Forward (each log clamped at -100, as PyTorch, so x = 0 or 1 gives at most 100):
        loss_i = -weight_i (t_i max(log x_i, -100) + (1 - t_i) max(log(1 - x_i), -100))
    Backward (PyTorch's formulas, with its floor EPSILON = 1e-12 as a float32):
        dx_i = g_i weight_i (x_i - t_i) / max(x_i (1 - x_i), EPSILON)
        dt_i = -g_i weight_i log(x_i / (1 - x_i))     (unclamped: +-inf at x = 0 or 1)
    """

    def forward(self, x, target, weight, reduction):
        xp = array_module(x)
        t = target.astype(x.dtype, copy=False)
        with np.errstate(divide="ignore"):  # log(0) = -inf, then clamped
            log_x = xp.maximum(xp.log(x), BCE_LOG_FLOOR)
            log_1mx = xp.maximum(xp.log1p(-x), BCE_LOG_FLOOR)
        loss = (t - 1) * log_1mx - t * log_x
        if weight is not None:
            weight = weight.astype(x.dtype, copy=False)
            loss = loss * weight
        self.save(x=x, t=t, weight=weight, reduction=reduction)
        return reduce_loss(loss, reduction, loss.size)

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        g = upstream(dy, s.reduction, s.x.shape, s.x.size)
        if s.weight is not None:
            g = g * s.weight
        dx = dt = None
        if self.needs_input_grad[0]:
            dx = g * (s.x - s.t) / xp.maximum(s.x * (1 - s.x), BCE_EPSILON)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                dt = -g * xp.log(s.x / (1 - s.x))
        return dx, dt, None, None


def log_sigmoid_array(x):
    """log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)): exp never overflows, never log(0)."""
    xp = array_module(x)
    return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))


class BinaryCrossEntropyWithLogits(Function):
    r"""sigmoid + binary cross-entropy in one op, stable for any logit (also +-1e4).

    Shapes: x, target any shape (the same); weight and pos_weight broadcast to it;
            y: x's shape for 'none', else a scalar.
    Forward, with pw = pos_weight (1 when None) and l_i = 1 + (pw - 1) t_i:
        loss_i = weight_i ((1 - t_i) x_i - l_i log sigmoid(x_i))
               = weight_i ((1 - t_i) x_i + l_i (log(1 + exp(-|x_i|)) + max(-x_i, 0)))
        (equal to -weight (pw t log s + (1 - t) log(1 - s)) with s = sigmoid(x), but it
        never forms log(0) nor exp(1e4))
    Backward:
        dx_i = g_i weight_i (l_i sigmoid(x_i) - pw t_i)          (= sigmoid(x) - t without pw)
        dt_i = g_i weight_i (log sigmoid(-x_i) - pw log sigmoid(x_i))   (= -x without pw)
    """

    def forward(self, x, target, weight, pos_weight, reduction):
        t = target.astype(x.dtype, copy=False)
        log_sig = log_sigmoid_array(x)  # log sigmoid(x) <= 0
        if pos_weight is not None:
            pos_weight = pos_weight.astype(x.dtype, copy=False)
            loss = (1 - t) * x - (1 + (pos_weight - 1) * t) * log_sig
        else:
            loss = (1 - t) * x - log_sig
        if weight is not None:
            weight = weight.astype(x.dtype, copy=False)
            loss = loss * weight
        self.save(x=x, t=t, weight=weight, pos_weight=pos_weight, reduction=reduction)
        return reduce_loss(loss, reduction, loss.size)

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        g = upstream(dy, s.reduction, s.x.shape, s.x.size)
        if s.weight is not None:
            g = g * s.weight
        pw = s.pos_weight
        dx = dt = None
        if self.needs_input_grad[0]:
            sig = xp.exp(log_sigmoid_array(s.x))  # sigmoid(x), computed stably
            dx = g * (sig - s.t if pw is None else (1 + (pw - 1) * s.t) * sig - pw * s.t)
        if self.needs_input_grad[1]:
            dt = g * (-s.x if pw is None else log_sigmoid_array(-s.x) - pw * log_sigmoid_array(s.x))
        return dx, dt, None, None, None


# --- regression and overlap losses ---------------------------------------------------------------
class MSELoss(Function):
    r"""Squared error (x - t)^2, optionally weighted per element.

    Shapes: x, target, weight (optional) the same shape; y: x's shape for 'none', else
            a scalar.
    Forward:  loss_i = weight_i (x_i - t_i)^2;  'mean' divides by the number of elements,
              or by sum_i weight_i when weight is given (PyTorch's weighted mean).
    Backward: dx_i = 2 g_i weight_i (x_i - t_i),  dt_i = -dx_i,
              dweight_i = g_i (x_i - t_i)^2 for 'none'/'sum';
              for the weighted 'mean' L = sum_i w_i se_i / sum_i w_i the denominator
              depends on weight too: dweight_i = dy (se_i - L) / sum_i w_i.
    """

    def forward(self, x, target, weight, reduction):
        diff = x - target.astype(x.dtype, copy=False)
        squared = diff * diff
        if weight is None:
            loss, denominator = squared, squared.size
        else:
            weight = weight.astype(x.dtype, copy=False)
            loss, denominator = squared * weight, weight.sum()
        y = reduce_loss(loss, reduction, denominator)
        self.save(diff=diff, squared=squared, weight=weight, reduction=reduction,
                  denominator=denominator, y=y)
        return y

    def backward(self, dy):
        s = self.saved
        g = upstream(dy, s.reduction, s.diff.shape, s.denominator)
        g_weighted = g if s.weight is None else g * s.weight
        dx = 2 * g_weighted * s.diff if any(self.needs_input_grad[:2]) else None
        dt = -dx if self.needs_input_grad[1] else None
        dweight = None
        if self.needs_input_grad[2]:
            dweight = g * s.squared
            if s.reduction == "mean":
                dweight = g * (s.squared - s.y)
        return (dx if self.needs_input_grad[0] else None), dt, dweight, None


class DiceLoss(Function):
    r"""Soft Dice loss 1 - dice per sample and class (not in PyTorch; see docs/gradients/dice_loss.md).

    Shapes: p (N,C,d1,...) probabilities; target the same shape (one-hot or probabilities)
            or (N,d1,...) class indices (one-hot encoded here); ``axes`` the summed
            (spatial) axes; y (N,C) for 'none' (the summed axes removed), else a scalar.
    Forward, per sample n and class c, sums over the pixels j, s = smooth:
        I = sum_j p_j t_j     P = sum_j p_j     T = sum_j t_j     D = P + T + s
        dice = (2 I + s) / D      loss[n,c] = 1 - dice;  'mean' averages over (n, c).
    Backward (quotient rule, g = dL/dloss[n,c]):
        dp_j = -g (2 t_j D - (2 I + s)) / D^2
        dt_j = -g (2 p_j D - (2 I + s)) / D^2      (probability targets only)
    """

    def forward(self, p, target, axes, smooth, reduction):
        if target.dtype.kind in "iu":  # class indices (N,d1,...) -> one-hot (N,C,d1,...)
            t = one_hot_array(target, p.shape[1], p.dtype)
        else:
            t = target.astype(p.dtype, copy=False)
        numerator = 2 * (p * t).sum(axis=axes, keepdims=True) + smooth  # 2 I + s
        denominator = p.sum(axis=axes, keepdims=True) + t.sum(axis=axes, keepdims=True) + smooth
        loss = 1 - numerator / denominator  # (N,C,1,...) with the summed axes kept
        self.save(p=p, t=t, numerator=numerator, denominator=denominator, reduction=reduction,
                  loss_shape=loss.shape)
        loss = loss.reshape([n for i, n in enumerate(loss.shape) if i not in axes])
        return reduce_loss(loss, reduction, loss.size)

    def backward(self, dy):
        s = self.saved
        count = int(np.prod(s.loss_shape))
        g = upstream(dy, s.reduction, s.loss_shape, count)  # (N,C,1,...)
        scale = -g / (s.denominator * s.denominator)
        dp = scale * (2 * s.t * s.denominator - s.numerator) if self.needs_input_grad[0] else None
        dt = scale * (2 * s.p * s.denominator - s.numerator) if self.needs_input_grad[1] else None
        return dp, dt, None, None, None
