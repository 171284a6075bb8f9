"""How many windows fit along one axis: the output sizes of convolutions and pooling, written once.

A window of ``kernel`` taps, ``dilation`` apart, spans D*(K-1) + 1 cells; it starts every
``stride`` cells of the input padded by ``padding`` on each side. The output has one entry per
start that leaves the whole window inside:

    out = floor((size + P_before + P_after - D*(K-1) - 1) / S) + 1

Pooling with ``ceil_mode`` rounds up instead, but drops a last window that would start in the
right padding (PyTorch's rule). The transposed convolution inverts the convolution's formula.
"""


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output length along one axis. ``padding``: an int (both sides) or (before, after).
    The value may be < 1: the caller turns that into an error."""
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = size + before + after - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + before:  # the last window would start in the right padding
        out -= 1
    return out


def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """Output length of a transposed convolution: the size whose convolution gives ``size``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
