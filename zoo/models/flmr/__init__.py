"""FLMR / PreFLMR retrievers (LinWeizheDragon/FLMR) on transformers 5."""

from .configuration_flmr import FLMRConfig, FLMRInputError, FLMRTextConfig, FLMRVisionConfig
from .modeling_flmr import (
    FLMRContextEncoderOutput,
    FLMRModelForRetrieval,
    FLMRQueryEncoderOutput,
    module_to_hub_key,
)
from .tokenization_flmr import FLMRContextEncoderTokenizer, FLMRQueryEncoderTokenizer

__all__ = [
    "FLMRConfig",
    "FLMRContextEncoderOutput",
    "FLMRContextEncoderTokenizer",
    "FLMRInputError",
    "FLMRModelForRetrieval",
    "FLMRQueryEncoderOutput",
    "FLMRQueryEncoderTokenizer",
    "FLMRTextConfig",
    "FLMRVisionConfig",
    "module_to_hub_key",
]
