"""Nets: layers with native kernels, landmark nets by name, and the inference wrapper."""

from .inference import InferenceModel, face_probability, flip_average, split_inference
from .layers import ConvBlock, LinearBlock, PReLU, conv_prelu_pool, prelu_backward_reference
from .nets import (NETS, LandmarkNet, Stage1Net, build_net, count_parameters, freeze, layer_names, register,
                   start_at_centre)

__all__ = ["ConvBlock", "InferenceModel", "LandmarkNet", "LinearBlock", "NETS", "PReLU", "Stage1Net",
           "build_net", "conv_prelu_pool", "count_parameters", "face_probability", "flip_average", "freeze",
           "layer_names", "prelu_backward_reference", "register", "split_inference", "start_at_centre"]
