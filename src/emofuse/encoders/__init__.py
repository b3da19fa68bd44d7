"""Pretrained encoders (backbones) loaded from local folders, kept out of the fusion models.

`load_text_encoder` / `load_audio_encoder` load a frozen Hugging Face encoder from a *local*
folder (no hub access); `encode_text` / `encode_audio` turn raw text / 16 kHz waveforms into the
``[B, T, D]`` states and ``[B, T]`` masks the models in `emofuse.models` consume.
"""

from emofuse.encoders.base import LoadedEncoder, check_model_folder
from emofuse.encoders.speech import encode_audio, load_audio_encoder
from emofuse.encoders.text import encode_text, load_text_encoder

__all__ = ["LoadedEncoder", "check_model_folder", "encode_audio", "encode_text", "load_audio_encoder",
           "load_text_encoder"]
