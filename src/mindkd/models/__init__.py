"""Torch modules of MIND-KD: encoders behind one interface, fusion modules, the multi-head student.

Build encoders and fusions by name (``build_encoder``, ``build_fusion``); ``list_encoders`` and
``list_fusions`` say what is registered.
"""

from mindkd.models.batch import HeadOutput, MultiModalBatch, TaskSpec
from mindkd.models.cxr import CXREncoder, DenseNet, ResNet
from mindkd.models.ehr import EHREncoder, RNNEncoder, TCNEncoder, TransformerEHREncoder
from mindkd.models.fusion import ConcatFusion, Fusion, GatedFusion, LateFusion, MedFuseFusion
from mindkd.models.medfuse import MedFuseModel, ZeroFilledJointModel
from mindkd.models.registry import (
    EHR_CHANNELS,
    MODALITIES,
    Encoder,
    Modality,
    RegistryError,
    build_encoder,
    build_fusion,
    count_parameters,
    encoder_modality,
    encoder_settings,
    list_encoders,
    list_fusions,
    register_encoder,
    register_fusion,
    with_ehr_channels,
)
from mindkd.models.student import (
    ROUTINGS,
    MultiHeadStudent,
    RoutedModel,
    Routing,
    UnimodalClassifier,
    paired_rows,
    route,
)

__all__ = [
    "EHR_CHANNELS",
    "MODALITIES",
    "ROUTINGS",
    "CXREncoder",
    "ConcatFusion",
    "DenseNet",
    "EHREncoder",
    "Encoder",
    "Fusion",
    "GatedFusion",
    "HeadOutput",
    "LateFusion",
    "MedFuseFusion",
    "MedFuseModel",
    "Modality",
    "MultiHeadStudent",
    "MultiModalBatch",
    "RNNEncoder",
    "RegistryError",
    "ResNet",
    "RoutedModel",
    "Routing",
    "TCNEncoder",
    "TaskSpec",
    "TransformerEHREncoder",
    "UnimodalClassifier",
    "ZeroFilledJointModel",
    "build_encoder",
    "build_fusion",
    "count_parameters",
    "encoder_modality",
    "encoder_settings",
    "list_encoders",
    "list_fusions",
    "paired_rows",
    "register_encoder",
    "register_fusion",
    "route",
    "with_ehr_channels",
]
