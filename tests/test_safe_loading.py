"""Only safetensors weights load, and training state loads with `weights_only=True`: a pickle in a
model folder or checkpoint is never executed, and the user gets a one-line QfsumError instead."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from qfsum import QfsumError
from qfsum.assets import load_cross_encoder, load_generator_uncached, load_sentence_encoder
from qfsum.writers.seq2seq_writers import load_seq2seq
from qfsum.training.writer.sft import TrainConfig, load_state, load_trainable

REFUSED = re.escape("no safetensors weights (pickle .bin files are not loaded)")


class _CreatesFile:
    """Unpickling this creates `path`: the proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def code_running_pickle(marker: Path) -> bytes:
    """A pickle that creates `marker` when loaded without weights_only."""
    return pickle.dumps({"weight": _CreatesFile(marker)})


def pickle_only_model(folder: Path, marker: Path, config: dict | None = None) -> Path:
    """A model folder (a tiny Llama config by default) whose only weights are a code-running pickle."""
    folder.mkdir(parents=True)
    config = config or {"model_type": "llama", "vocab_size": 64, "hidden_size": 8, "intermediate_size": 16,
                        "num_hidden_layers": 1, "num_attention_heads": 2}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "pytorch_model.bin").write_bytes(code_running_pickle(marker))
    return folder


def test_writer_with_only_a_pickle_is_refused(tmp_path):
    folder = pickle_only_model(tmp_path / "writer", tmp_path / "ran")
    with pytest.raises(QfsumError, match=f"writer: {REFUSED}"):
        load_generator_uncached(str(folder))
    assert not (tmp_path / "ran").exists()


def test_seq2seq_writer_with_only_a_pickle_is_refused(tmp_path):
    config = {"model_type": "bart", "vocab_size": 64, "d_model": 8, "encoder_layers": 1, "decoder_layers": 1}
    folder = pickle_only_model(tmp_path / "bart", tmp_path / "ran", config)
    with pytest.raises(QfsumError, match=REFUSED):
        load_seq2seq("plain", str(folder))
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("loader", [load_sentence_encoder, load_cross_encoder])
def test_scorer_with_only_a_pickle_is_refused(tmp_path, loader):
    config = {"model_type": "bert", "vocab_size": 64, "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 16}
    folder = pickle_only_model(tmp_path / "encoder", tmp_path / "ran", config)
    with pytest.raises(QfsumError, match=REFUSED):
        loader(str(folder))
    assert not (tmp_path / "ran").exists()


def test_adapter_with_only_a_pickle_is_refused(tmp_path, tiny_causal_dir):
    """peft would fall back to `adapter_model.bin`; the folder is refused before peft sees it."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_causal_dir),
                                                             "peft_type": "LORA", "r": 2, "target_modules": ["q_proj"]}))
    (adapter / "adapter_model.bin").write_bytes(code_running_pickle(tmp_path / "ran"))
    with pytest.raises(QfsumError, match=f"adapter: {REFUSED}"):
        load_generator_uncached(str(adapter))
    assert not (tmp_path / "ran").exists()


def test_a_pickle_beside_safetensors_is_ignored(tmp_path, tiny_causal_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_causal_dir, folder)
    (folder / "pytorch_model.bin").write_bytes(code_running_pickle(tmp_path / "ran"))
    model, _ = load_generator_uncached(str(folder), "float32")
    assert model.config.hidden_size == 32
    assert not (tmp_path / "ran").exists()


def test_sft_resume_from_a_pickled_checkpoint_is_refused(tmp_path, tiny_bytes_dir):
    checkpoint = tmp_path / "checkpoint" / "model"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_config.json").write_text("{}")
    (checkpoint / "adapter_model.bin").write_bytes(code_running_pickle(tmp_path / "ran"))
    config = TrainConfig(base=str(tiny_bytes_dir), data="unused", out=str(tmp_path))
    with pytest.raises(QfsumError, match=REFUSED):
        load_trainable(config, resume_from=checkpoint)
    assert not (tmp_path / "ran").exists()


# -- the training state next to the checkpoint's weights ----------------------------------------------


def test_training_state_round_trips_with_weights_only(tmp_path):
    """What `_checkpoint` saves (optimizer, schedule, step) loads back under weights_only=True."""
    from transformers import get_linear_schedule_with_warmup

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 10)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": 1}, tmp_path / "state.pt")
    state = load_state(tmp_path / "state.pt")
    assert state["step"] == 1
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    assert scheduler.get_last_lr() == [pytest.approx(5e-4)]


@pytest.mark.parametrize("content", ["pickle", "garbage", "list"])
def test_bad_training_state_is_a_user_error(tmp_path, content):
    path = tmp_path / "state.pt"
    if content == "pickle":
        path.write_bytes(code_running_pickle(tmp_path / "ran"))
    elif content == "garbage":
        path.write_bytes(b"not a torch file")
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(QfsumError, match="not a qfsum training state") as caught:
        load_state(path)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "ran").exists()
