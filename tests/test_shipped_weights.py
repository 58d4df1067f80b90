"""Models this project trained and ships inside the package (`qfsum/weights/NAME`): small, carded,
resolvable by name, and loadable offline on their packaged base."""

from __future__ import annotations

import json

import pytest

from qfsum.assets import PACKAGED, SHIPPED_WEIGHTS, resolve, shipped_models

MAX_MB = 50


def test_the_default_pipelines_writer_is_shipped():
    from qfsum.pipeline import load_config

    assert load_config("default").writer.model in shipped_models()


@pytest.mark.parametrize("name", shipped_models())
def test_shipped_model_is_small_carded_and_names_a_packaged_base(name):
    folder = SHIPPED_WEIGHTS / name
    assert resolve(name).location == str(folder)
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors") / 2**20
    assert 0 < size_mb <= MAX_MB
    card = (folder / "README.md").read_text()
    assert "qfsum train" in card  # the command that made it
    base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base in PACKAGED  # no path of the machine that trained it


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_models())
def test_shipped_adapter_loads_on_its_packaged_base_and_changes_it(name):
    import torch

    from qfsum.assets import load_generator

    adapted, tokenizer = load_generator(name, "float32")
    base, _ = load_generator("smollm2", "float32")
    ids = tokenizer("What did the team decide about the budget?", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(adapted(ids).logits, base(ids).logits, atol=1e-3)
