"""FLMR / PreFLMR retrievers (LinWeizheDragon/FLMR) on transformers 5."""
from .configuration import FLMRConfig, FLMRTextConfig, FLMRVisionConfig
from .modeling import (
    FLMRContextEncoderOutput,
    FLMRModelForRetrieval,
    FLMRQueryEncoderOutput,
    hub_to_module_key,
    module_to_hub_key,
)
from .tokenization import FLMRContextEncoderTokenizer, FLMRQueryEncoderTokenizer

__all__ = [
    "FLMRConfig",
    "FLMRContextEncoderOutput",
    "FLMRContextEncoderTokenizer",
    "FLMRModelForRetrieval",
    "FLMRQueryEncoderOutput",
    "FLMRQueryEncoderTokenizer",
    "FLMRTextConfig",
    "FLMRVisionConfig",
    "hub_to_module_key",
    "module_to_hub_key",
]
