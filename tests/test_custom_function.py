"""User-written ops, in minidl's form and in PyTorch's: correct gradients whatever a backward
returns, and PyTorch's documented examples ported by changing their imports."""
import textwrap

import numpy as np
import pytest

import minidl
from minidl.autograd import Function
from minidl.backend import array_module, to_host

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)


# --- a backward may return anything: the engine never writes into it ---------------------------
class Double(Function):
    """A student's op whose backward returns an array it saved (with ``np.full_like`` on the CPU;
    written with the input's array module here, so that it runs on every device)."""

    def forward(self, x):
        self.save(g=array_module(x).full_like(x, 2.0))
        return 2 * x

    def backward(self, dy):
        return self.saved.g


def test_a_backward_that_returns_a_saved_array_accumulates_correctly():
    x = minidl.tensor([1.0, 1.0], requires_grad=True)
    y = Double.apply(x).sum()
    for _ in range(3):
        y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    np.testing.assert_array_equal(to_host(y.grad_fn.next_functions[0][0].saved.g), [2.0, 2.0])  # untouched


class SameForBoth(Function):
    """y = a + b, whose backward hands ONE array to both inputs."""

    def forward(self, a, b):
        return a + b

    def backward(self, dy):
        g = dy * 1.0
        return g, g


def test_one_array_returned_for_two_inputs_becomes_two_gradients():
    a = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = SameForBoth.apply(a, a * 3.0) + SameForBoth.apply(a, a)  # a reached four ways
    y.backward(minidl.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(a.grad.numpy(), [6.0, 60.0])
    b, c = minidl.tensor([0.0], requires_grad=True), minidl.tensor([0.0], requires_grad=True)
    SameForBoth.apply(b, c).backward(minidl.tensor([1.0]))
    b.grad += 5  # the two leaves' gradients are separate arrays
    np.testing.assert_array_equal(c.grad.numpy(), [1.0])


# --- PyTorch's form, from its documentation, run by changing the imports -----------------------
DOCS_EXAMPLES = textwrap.dedent('''
    import torch
    from torch.autograd import Function, gradcheck


    class LinearFunction(Function):
        # Note that both forward and backward are @staticmethods
        @staticmethod
        # bias is an optional argument
        def forward(ctx, input, weight, bias=None):
            ctx.save_for_backward(input, weight, bias)
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output

        # This function has only a single output, so it gets only one gradient
        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output.mm(weight)
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.t().mm(input)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias


    class LinearFunctionSetup(Function):  # the same op with a separate setup_context
        @staticmethod
        def forward(input, weight, bias):
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output

        @staticmethod
        def setup_context(ctx, inputs, output):
            input, weight, bias = inputs
            ctx.save_for_backward(input, weight, bias)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output.mm(weight)
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.t().mm(input)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias


    class MulConstant(Function):
        @staticmethod
        def forward(ctx, tensor, constant):
            # ctx is a context object that can be used to stash information
            # for backward computation
            ctx.constant = constant
            return tensor * constant

        @staticmethod
        def backward(ctx, grad_output):
            # We return as many input gradients as there were arguments.
            # Gradients of non-Tensor arguments to forward must be None.
            return grad_output * ctx.constant, None


    class MyCube(torch.autograd.Function):
        @staticmethod
        def forward(x):
            # We wish to save dx for backward. In order to do so, it must
            # be returned as an output.
            dx = 3 * x ** 2
            result = x ** 3
            return result, dx

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, = inputs
            result, dx = output
            ctx.save_for_backward(x, dx)

        @staticmethod
        def backward(ctx, grad_output, grad_dx):
            x, dx = ctx.saved_tensors
            # In order for the autograd.Function to work with higher-order
            # gradients, we must add the gradient contribution of `dx`,
            # which is grad_dx * 6 * x.
            result = grad_output * dx + grad_dx * 6 * x
            return result


    class Exp(Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            result, = ctx.saved_tensors
            return grad_output * result


    linear = LinearFunction.apply
    input = (torch.randn(20, 20, dtype=torch.double, requires_grad=True),
             torch.randn(30, 20, dtype=torch.double, requires_grad=True))
    test = gradcheck(linear, input, eps=1e-6, atol=1e-4)
''')


def _run_docs(library):
    """The examples with ``torch`` replaced by ``library`` in the code (imports included)."""
    namespace = {}
    exec(compile(DOCS_EXAMPLES.replace("torch", library), f"<docs examples on {library}>", "exec"), namespace)
    return namespace


def test_the_documentation_examples_run_on_minidl_by_changing_the_imports():
    ns = _run_docs("minidl")
    assert ns["test"] is True  # the docs' own gradcheck passes


@pytest.mark.parametrize("example", ["LinearFunction", "LinearFunctionSetup", "MulConstant", "MyCube", "Exp"])
def test_the_documentation_examples_match_torch(torch, example):
    rng = np.random.default_rng(3)
    arrays = {"LinearFunction": [(5, 4), (3, 4), (3,)], "LinearFunctionSetup": [(5, 4), (3, 4), (3,)],
              "MulConstant": [(3, 5)], "MyCube": [(4, 3)], "Exp": [(2, 3)]}[example]
    arrays = [rng.standard_normal(shape) for shape in arrays]
    extra = (2.5,) if example == "MulConstant" else ()
    results = []
    for library, lib in (("minidl", minidl), ("torch", torch)):
        op = _run_docs(library)[example]
        inputs = [lib.tensor(a, dtype=lib.float64, requires_grad=True) for a in arrays]
        out = op.apply(*inputs, *extra)
        outs = out if isinstance(out, tuple) else (out,)
        dys = [lib.tensor(np.random.default_rng(k).standard_normal(tuple(o.shape))) for k, o in enumerate(outs)]
        sum(((o * dy).sum() for o, dy in zip(outs, dys)), lib.tensor(0.0, dtype=lib.float64)).backward()
        results.append(([o.detach().numpy() for o in outs], [t.grad.numpy() for t in inputs]))
    (outs_m, grads_m), (outs_t, grads_t) = results
    for a, b in zip(outs_m + grads_m, outs_t + grads_t):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck_of_the_documented_ops_with_a_random_upstream_gradient():
    ns = _run_docs("minidl")
    rng = np.random.default_rng(0)
    x, w, b = (minidl.tensor(rng.standard_normal(s), dtype=minidl.float64, requires_grad=True)
               for s in [(5, 3), (4, 3), (4,)])
    dy = minidl.tensor(rng.standard_normal((5, 4)))
    assert minidl.gradcheck(lambda *t: (ns["LinearFunctionSetup"].apply(*t) * dy).sum(), (x, w, b))
    d1, d2 = minidl.tensor(rng.standard_normal((5, 3))), minidl.tensor(rng.standard_normal((5, 3)))
    assert minidl.gradcheck(lambda t: sum(o * d for o, d in zip(ns["MyCube"].apply(t), (d1, d2))).sum(), (x,))


# --- the rest of the ctx API -----------------------------------------------------------------
def test_mark_dirty_returns_the_input_changed_in_place_with_a_new_grad_fn(torch):
    def define(lib):
        class TimesTwoInPlace(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.mul_(2)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, grad):
                return grad * 2
        return TimesTwoInPlace

    for lib in (minidl, torch):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = a * 1
        c = define(lib).apply(b)
        assert c is b and b._version == 2  # mul_ and mark_dirty each count, as in PyTorch
        (c * lib.tensor([1.0, 3.0])).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), [2.0, 6.0])
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            define(lib).apply(lib.tensor([1.0], requires_grad=True))


def test_non_differentiable_outputs_and_materialized_zero_gradients(torch):
    def define(lib):
        class SortWithIndex(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                order = lib.tensor(np.argsort(x.detach().numpy()))
                values = x[order]
                ctx.mark_non_differentiable(order)
                ctx.save_for_backward(order)
                return values, order

            @staticmethod
            def backward(ctx, grad_values, grad_order):
                order, = ctx.saved_tensors
                assert grad_order.shape == order.shape and not grad_order.numpy().any()  # zeros
                grad = lib.zeros_like(grad_values)
                grad[order] = grad_values
                return grad
        return SortWithIndex

    for lib in (minidl, torch):
        x = lib.tensor([3.0, 1.0, 2.0], requires_grad=True)
        values, order = define(lib).apply(x)
        assert not order.requires_grad and values.requires_grad
        (values * lib.tensor([1.0, 2.0, 3.0])).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [3.0, 1.0, 2.0])


def test_a_wrong_number_of_gradients_is_pytorchs_error():
    class Broken(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad):
            return grad

    a = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"returned an incorrect number of gradients \(expected 2, got 1\)"):
        Broken.apply(a, a).sum().backward()
    assert a.grad is None
