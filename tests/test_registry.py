"""The packaged registry holds exactly the 20 listed checkpoints with the spec's numbers, and
malformed registries fail with the file, the entry and the field named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from zoo.errors import RegistryError, UnknownModelError
from zoo.registry import load_registry, packaged_registry_path

SIZES = ("large", "medium", "small", "tiny")
EXPECTED_IDS = {
    "tapas_dual_encoder_proj_0_large",
    *(f"tapas_dual_encoder_proj_256_{s}" for s in SIZES),
    *(f"tapas_nq_retriever_{s}" for s in SIZES),
    *(f"tapas_nq_hn_retriever_{s}" for s in SIZES),
    "tapas_nq_reader_large",
    "tapas_nq_hn_reader_large",
    "splade-distilbert-base-uncased-msmarco-mnrl",
    "PreFLMR_ViT-B",
    "PreFLMR_ViT-L",
    "PreFLMR_ViT-G",
    "FLMR",
}


@pytest.fixture()
def packaged() -> dict:
    return json.loads(packaged_registry_path().read_text())


def write(tmp_path: Path, data: dict, name: str = "user.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_exactly_the_twenty_listed_ids():
    registry = load_registry([])
    assert set(registry.ids()) == EXPECTED_IDS
    assert len(registry) == 20


def test_tapas_urls_and_converters():
    registry = load_registry([])
    for entry in registry.filter("tapas"):
        assert entry.source.url == f"https://storage.googleapis.com/tapas_models/2021_04_27/{entry.id}.zip"
        assert entry.converter == ("tapas-reader" if "reader" in entry.id else "tapas-retriever")
        assert entry.source.sha256 is None  # unknown upstream: pinned on first pull


def test_published_tapas_numbers_match_the_release_table():
    registry = load_registry([])
    hn_tiny = {m.metric: m.value for m in registry.get("tapas_nq_hn_retriever_tiny").metrics}
    assert hn_tiny == {"recall@1": 22.2, "recall@10": 61.3, "recall@50": 78.9}
    assert registry.get("tapas_nq_hn_retriever_tiny").attributes.hard_negatives is True
    assert registry.get("tapas_nq_retriever_medium").attributes.down_projection_dim == 256
    assert registry.get("tapas_dual_encoder_proj_0_large").attributes.down_projection_dim == 0


def test_full_repo_ids_resolve_to_the_same_entry():
    registry = load_registry([])
    assert registry.get("LinWeizheDragon/PreFLMR_ViT-B") is registry.get("PreFLMR_ViT-B")
    splade = registry.get("tomaarsen/splade-distilbert-base-uncased-msmarco-mnrl")
    assert splade.id == "splade-distilbert-base-uncased-msmarco-mnrl"
    assert splade.golden[0].values == (33.7473, 25.6638, 0.2965)
    assert splade.golden[0].tolerance == 1e-3


def test_unknown_id_suggests_close_matches():
    with pytest.raises(UnknownModelError) as info:
        load_registry([]).get("PreFLMR_VIT-G")
    assert "PreFLMR_ViT-G" in info.value.suggestions
    assert info.value.exit_code == 2


def test_flmr_entries_carry_paper_and_converted_sets():
    vit_b = load_registry([]).get("PreFLMR_ViT-B")
    paper = {(m.benchmark, m.metric): m.value for m in vit_b.metrics_of("paper")}
    converted = {(m.benchmark, m.metric): m.value for m in vit_b.metrics_of("converted")}
    assert paper[("M2KR E-VQA", "PR@5")] == 67.9
    assert converted[("M2KR E-VQA", "PR@5")] == 66.3
    assert converted[("M2KR E-VQA", "R@5")] == 55.0  # strict recall, converted only
    assert len(paper) == 9 and len(converted) == 12


def test_user_registry_overrides_and_adds(tmp_path, packaged):
    user = {"schema_version": 1, "models": [copy.deepcopy(packaged["models"][0])]}
    user["models"][0]["license"] = "changed"
    added = copy.deepcopy(packaged["models"][1])
    added["id"] = "my_model"
    user["models"].append(added)
    registry = load_registry([write(tmp_path, user)])
    assert registry.get(packaged["models"][0]["id"]).license == "changed"
    assert registry.get("my_model").family == "tapas"
    assert len(registry) == 21


def test_zoo_registry_env_is_read_at_call_time(tmp_path, packaged, monkeypatch):
    added = copy.deepcopy(packaged["models"][1])
    added["id"] = "env_model"
    first = write(tmp_path, {"schema_version": 1, "models": [added]}, "a.json")
    second = write(tmp_path, {"schema_version": 1, "models": []}, "b.json")
    monkeypatch.setenv("ZOO_REGISTRY", f"{first}{__import__('os').pathsep}{second}")
    assert load_registry().get("env_model").id == "env_model"


@pytest.mark.parametrize(
    ("mutate", "entry", "field", "words"),
    [
        (lambda m: m["source"].__setitem__("sha256", "abc"), "E", "source.sha256", "does not match"),
        (lambda m: m.pop("family"), "E", "family", "required field is missing"),
        (lambda m: m.__setitem__("colour", "red"), "E", "colour", "unknown field"),
        (
            lambda m: m["metrics"].append(
                {"benchmark": "b", "metric": "m", "value": "x", "set": "paper", "provenance": "p"}
            ),
            "E",
            "metrics.0.value",
            "not of type 'number'",
        ),
        (lambda m: m["source"].__setitem__("kind", "ftp"), "E", "source.kind", "'ftp' is not one of"),
        (lambda m: m["source"].__setitem__("url", None), "E", "source.url", "not of type 'string'"),
        (lambda m: m.__setitem__("converter", "tapas-v2"), "E", "converter", "is not one of"),
    ],
)
def test_schema_errors_name_file_entry_and_field(tmp_path, packaged, mutate, entry, field, words):
    model = copy.deepcopy(packaged["models"][0])
    model["id"] = "E"
    model["metrics"] = []
    mutate(model)
    path = write(tmp_path, {"schema_version": 1, "models": [model]})
    with pytest.raises(RegistryError) as info:
        load_registry([path])
    err = info.value
    assert (err.file, err.entry, err.field) == (str(path), entry, field)
    assert words in err.problem
    assert str(path) in str(err) and f"entry {entry!r}" in str(err) and f"field {field!r}" in str(err)
    assert err.exit_code == 2


def test_invalid_json_and_duplicates(tmp_path, packaged):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "models": [}')
    with pytest.raises(RegistryError, match=r"bad\.json: invalid JSON at line 1"):
        load_registry([bad])
    dup = write(tmp_path, {"schema_version": 1, "models": [packaged["models"][0]] * 2})
    with pytest.raises(RegistryError) as info:
        load_registry([dup])
    assert info.value.field == "id" and "duplicate" in info.value.problem
    with pytest.raises(RegistryError, match="file not found"):
        load_registry([tmp_path / "missing.json"])


def test_all_missing_fields_are_named_and_entries_without_id_are_located(tmp_path):
    path = write(tmp_path, {"schema_version": 1, "models": [{"id": "x", "family": "tapas"}]})
    with pytest.raises(RegistryError) as info:
        load_registry([path])
    assert info.value.entry == "x" and info.value.field == "task"
    assert "task, size, attributes, source, converter, license, paper" in info.value.problem
    path = write(tmp_path, {"schema_version": 1, "models": [{"id": 5}]}, "noid.json")
    with pytest.raises(RegistryError) as info:
        load_registry([path])
    assert info.value.entry == "models[0]"
