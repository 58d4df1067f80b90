"""Models this project trained and ships inside the package (`qfsum/weights/NAME`): small, carded,
resolvable by name, and loadable offline on their packaged base."""

from __future__ import annotations

import json

import pytest

from qfsum.assets import PACKAGED, SHIPPED_WEIGHTS, resolve, shipped_models

MAX_MB = 50


def test_the_default_pipelines_writer_and_extractor_are_shipped():
    from qfsum.pipeline import load_config

    config = load_config("default")
    assert config.writer.model in shipped_models() and config.scorer.model in shipped_models()


@pytest.mark.parametrize("name", shipped_models())
def test_shipped_model_is_small_carded_and_names_a_packaged_base(name):
    folder = SHIPPED_WEIGHTS / name
    assert resolve(name).location == str(folder)
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors") / 2**20
    assert 0 < size_mb <= MAX_MB
    card = (folder / "README.md").read_text()
    assert "qfsum train" in card  # the command that made it
    if (folder / "adapter_config.json").exists():
        base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert base in PACKAGED  # no path of the machine that trained it
    else:  # a whole sentence-transformers model: no run folders came with it
        assert (folder / "modules.json").exists() and not (folder / "checkpoints").exists()


def test_shipped_extractor_ranks_the_window_that_answers_first():
    from qfsum.document import Segment
    from qfsum.retrieval import build_scorer
    from qfsum.retrieval.registry import scorer_config_for_model

    texts = ["The marketing team presented the fruity colour scheme for the case.",
             "We agreed that the battery must last two years, so we chose the kinetic battery.",
             "Lunch is at one, and the next meeting is on Tuesday."]
    config = scorer_config_for_model("minilm-dpr-qmsum")
    assert (config.kind, config.model) == ("dense", "minilm-dpr-qmsum")
    scores = build_scorer(config).score("What did they decide about the battery?",
                                        [Segment(i, t, 0, 0) for i, t in enumerate(texts)])
    assert scores.argmax() == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in shipped_models() if (SHIPPED_WEIGHTS / n / "adapter_config.json").exists()])
def test_shipped_adapter_loads_on_its_packaged_base_and_changes_it(name):
    import torch

    from qfsum.assets import load_generator

    adapted, tokenizer = load_generator(name, "float32")
    base, _ = load_generator("smollm2", "float32")
    ids = tokenizer("What did the team decide about the budget?", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(adapted(ids).logits, base(ids).logits, atol=1e-3)
