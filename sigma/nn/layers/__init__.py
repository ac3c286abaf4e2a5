"""The built-in layers, one module per family."""
from sigma.nn.layers.activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh)
from sigma.nn.layers.convolution import Conv1d, Conv2d
from sigma.nn.layers.dropout import Dropout
from sigma.nn.layers.embedding import Embedding
from sigma.nn.layers.linear import Linear
from sigma.nn.layers.normalisation import BatchNorm1d, BatchNorm2d, InstanceNorm2d, LayerNorm
from sigma.nn.layers.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from sigma.nn.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from sigma.nn.layers.shape import Flatten, Identity

__all__ = ["ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Softplus", "Tanh", "Conv1d",
           "Conv2d", "Dropout", "Embedding", "Linear", "BatchNorm1d", "BatchNorm2d", "InstanceNorm2d", "LayerNorm",
           "AvgPool2d", "GlobalAvgPool2d", "MaxPool2d", "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell",
           "Flatten", "Identity"]
