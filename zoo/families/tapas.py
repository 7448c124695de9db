"""TAPAS dense table retrievers and NQ readers: TF1 checkpoints in zips on GCS."""

from __future__ import annotations

from pathlib import Path

from .contract import CardInfo, Family, Format, RemoteCode


def _recognize(path: Path) -> bool:
    """An unzipped TF checkpoint: bert_config.json beside a *.index."""
    return any(path.rglob("bert_config.json")) and any(path.rglob("*.index"))


FAMILY = Family(
    name="tapas",
    description="TAPAS dense table retriever (dual encoder) and NQ reader, converted from TF1",
    tasks=("dense-retriever", "reader"),
    formats=(
        Format("tapas-retriever", "converters.tapas_retriever", "dense-retriever"),
        Format("tapas-reader", "converters.tapas_reader", "reader"),
    ),
    loader="zoo.models.tapas:load_pretrained",
    checks="zoo.checks.tapas",
    bench="zoo.benchmarks.tapas",
    card=CardInfo(
        library_name="transformers",
        pipeline_tags={"dense-retriever": "feature-extraction", "reader": "table-question-answering"},
        tags=("tapas", "table-retrieval", "dense-retrieval"),
    ),
    recognize=_recognize,
    input_errors=("zoo.models.tapas.configuration_tapas:TapasInputError",),
    model_package="zoo.models.tapas",
    remote_code=RemoteCode(
        auto_map={
            "dense-retriever": {
                "AutoConfig": "configuration_tapas.TapasDualEncoderConfig",
                "AutoModel": "modeling_tapas.TapasDualEncoder",
            },
            "reader": {
                "AutoConfig": "configuration_tapas.TapasReaderConfig",
                "AutoModel": "modeling_tapas.TapasReader",
            },
        }
    ),
    conversion_checks=("weights", "encodings"),  # the TF reference reads the same source checkpoint
    source_reference="zoo.checks.tapas:source_probe",
)
