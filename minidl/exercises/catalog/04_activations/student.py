"""ReLU, sigmoid and tanh: forward and backward (your solution)."""
import numpy as np


def relu(x):
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def relu_backward(x, dy):
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def sigmoid(x):
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def sigmoid_backward(y, dy):
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def tanh_backward(y, dy):
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
