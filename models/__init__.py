"""Models for "Spherical Perspective on Learning with Batch Norm" (Roburin et al., 2006.13382).

``create_model(name, num_classes=...)`` builds a registered model; every model splits its
parameters into ``conv_params()`` (scale-invariant conv weights, each feeding a BatchNorm) and
``other_params()`` for the spherical optimizers' parameter groups.
"""

from models._base import ConvBNModel
from models._registry import ModelFactory, create_model, list_models, register_model
from models.resnet import BasicBlock, ResNet, resnet18, resnet20
from models.vgg import VGG, VGG_CFGS, vgg16

__all__ = [
    "VGG",
    "VGG_CFGS",
    "BasicBlock",
    "ConvBNModel",
    "ModelFactory",
    "ResNet",
    "create_model",
    "list_models",
    "register_model",
    "resnet18",
    "resnet20",
    "vgg16",
]
