"""The real-time writer's training: task data, answer-only SFT, LoRA adapters, DPO and distillation.

Tiny random Llamas (conftest) stand in for SmolLM2; runs are a few steps long.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from qfsum.errors import QfsumError
from qfsum.training.writer.taskdata import (
    IGNORE,
    TaskExample,
    build_task_examples,
    encode,
    is_task_file,
    read_task_file,
    write_task_file,
)
from qfsum.writers.prompt import fitted_prompt_ids

TRAIN = [
    TaskExample(f"t{i}", f"What about item {i}?", f"Item {i} costs {i} euros. It is red.", f"Item {i} costs {i} euros.")
    for i in range(6)
]
VAL = [TaskExample("v0", "What colour is it?", "The box is green.", "It is green.")]


@pytest.fixture
def task_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_task_file(tmp_path / "train.jsonl", TRAIN), write_task_file(tmp_path / "val.jsonl", VAL)


@pytest.fixture(scope="module")
def tokenizer(tiny_bytes_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bytes_dir)


def _config(base, data, val, out, **overrides):
    from qfsum.training.writer.sft import TrainConfig

    fields = dict(base=str(base), data=str(data), out=str(out), split=None, val_data=str(val), val_split="val",
                  max_prompt=512, max_target=32, batch_size=2, max_steps=4, eval_steps=2, save_steps=2, log_steps=1,
                  val_max_new_tokens=6, lr=1e-2, lora_r=4, lora_alpha=8)
    fields.update(overrides)
    return TrainConfig(**fields)


# -- task data ------------------------------------------------------------------------------------


def test_spans_source_uses_gold_spans_of_specific_queries(qmsum_root):
    examples = build_task_examples(qmsum_root, "val", "spans")
    assert [e.id for e in examples] == ["meeting_b-s0", "meeting_b-s1", "meeting_c-s0"]  # general queries have no spans
    voice = examples[0]
    assert voice.passage.splitlines() == [
        "User Interface: I propose a scroll wheel and voice recognition for the buttons.",
        "Project Manager: We decided to drop voice recognition because of the budget. Meeting closed.",
    ]
    assert voice.target == "They dropped voice recognition because of the budget."
    assert build_task_examples(qmsum_root, "test", "spans")[0].id == "meeting_d-s0"  # splits follow the source


def test_document_source_cuts_to_budget_and_unknown_source_fails(qmsum_root, tokenizer):
    examples = build_task_examples(qmsum_root, "val", "document", tokenizer, budget=20)
    assert len(examples) == 5 and all(len(tokenizer(e.passage)["input_ids"]) <= 20 for e in examples)
    with pytest.raises(QfsumError, match="unknown task source"):
        build_task_examples(qmsum_root, "val", "bogus", tokenizer)


@pytest.fixture
def ranked(monkeypatch) -> list[int]:
    """The sizes of the example lists that task data ranked (a pipeline's evidence), in order."""
    from qfsum.training.writer import taskdata

    calls: list[int] = []
    real = taskdata._pipeline_passages
    monkeypatch.setattr(taskdata, "_pipeline_passages", lambda examples, *a: calls.append(len(examples)) or real(examples, *a))
    return calls


def test_pipeline_task_examples_are_ranked_once_then_read_from_the_cache(qmsum_root, tokenizer, tmp_path, ranked):
    from qfsum.training.writer import taskdata

    cache = tmp_path / "run"

    def build(**changes):
        args = dict(split="val", source="pipeline:extractive-bm25", budget=40) | changes
        return taskdata.cached_task_examples(cache, qmsum_root, args["split"], args["source"], tokenizer, args["budget"])

    first = build()
    assert ranked == [len(first)] and first[0].passage and len(list(cache.glob("tasks-val-*.jsonl"))) == 1
    assert build() == first and ranked == [len(first)]  # read back, not ranked again
    assert build(budget=20) != first and len(ranked) == 2  # another budget: other passages, ranked anew
    build(split="test")
    assert len(ranked) == 3
    assert build() == first and len(ranked) == 3
    spans = taskdata.cached_task_examples(cache, qmsum_root, "val", "spans")  # cheap sources are not cached
    assert spans and len(list(cache.glob("tasks-*.jsonl"))) == 3
    assert taskdata.cached_task_examples(cache, qmsum_root, "val", "pipeline:extractive-bm25", tokenizer, 40, limit=2) \
        == first[:2] and len(ranked) == 3  # a limited run reads the whole split's file


def test_task_file_survives_a_copy_of_the_data_but_not_new_contents(qmsum_root, tokenizer, tmp_path, ranked):
    import os

    from qfsum.training.writer import taskdata

    def build():
        return taskdata.cached_task_examples(tmp_path / "run", qmsum_root, "val", "pipeline:extractive-bm25", tokenizer, 40)

    first = build()
    some_file = sorted((Path(qmsum_root) / "val").iterdir())[0]
    os.utime(some_file, ns=(1, 1))  # same bytes, another time: as after a fresh copy
    assert build() == first and len(ranked) == 1
    some_file.write_text(some_file.read_text() + "\n")  # other bytes (the same JSON): ranked anew
    build()
    assert len(ranked) == 2


def test_task_file_survives_the_tokenizer_unpacked_elsewhere(qmsum_root, tokenizer, tmp_path, ranked):
    """A packaged model is unpacked to a folder named by the install: the same vocabulary from another
    folder (a fresh machine) finds the task file; another vocabulary does not."""
    import copy

    from qfsum.training.writer import taskdata

    def build(tok):
        return taskdata.cached_task_examples(tmp_path / "run", qmsum_root, "val", "pipeline:extractive-bm25", tok, 40)

    first = build(tokenizer)
    moved = copy.deepcopy(tokenizer)
    moved.name_or_path = "/another/machine/SmolLM2-135M-Instruct.Q4_1-98362432-1796673866"
    assert build(moved) == first and len(ranked) == 1
    moved.add_tokens(["qfsumnewtoken"])
    build(moved)
    assert len(ranked) == 2


def _saved(config, folder: Path) -> str:
    folder.mkdir()
    (folder / "pipeline.json").write_text(json.dumps(config.to_dict()))
    return str(folder)


def test_a_pipeline_that_differs_only_in_its_writer_shares_the_task_file(qmsum_root, tokenizer, tmp_path, ranked):
    """The passages are the pipeline's ranking alone: a new writer (another dtype, model or length) is
    not a reason to rank the split again; another scorer is."""
    from qfsum.pipeline import load_config
    from qfsum.retrieval import ScorerConfig
    from qfsum.training.writer import taskdata
    from qfsum.writers import WriterConfig


    def build(name: str):
        return taskdata.cached_task_examples(tmp_path / "run", qmsum_root, "val", f"pipeline:{name}", tokenizer, 40)

    first = build("extractive-bm25")
    config = load_config("extractive-bm25")
    config.writer = WriterConfig(kind="generative", model="smollm2", dtype="float32")
    assert build(_saved(config, tmp_path / "new-writer")) == first and len(ranked) == 1
    config.scorer = ScorerConfig(kind="lead")
    build(_saved(config, tmp_path / "new-scorer"))
    assert len(ranked) == 2


def test_task_file_round_trip(tmp_path):
    path = write_task_file(tmp_path / "t.jsonl", TRAIN)
    assert is_task_file(path) and read_task_file(path) == TRAIN
    assert build_task_examples(path, None, limit=2) == TRAIN[:2]
    (tmp_path / "bad.jsonl").write_text('{"passage": "x"}\n')
    with pytest.raises(QfsumError, match="needs 'query' and 'passage'"):
        read_task_file(tmp_path / "bad.jsonl")


def test_prompt_is_cut_to_fit_and_keeps_the_query(tokenizer):
    passage = "word " * 400
    ids = fitted_prompt_ids(tokenizer, "Which word?", passage, max_tokens=300)
    assert 290 <= len(ids) <= 300
    assert "Which word?" in tokenizer.decode(ids)


# -- answer-only loss -------------------------------------------------------------------------------


def test_encode_masks_everything_but_the_answer(tokenizer):
    example = TRAIN[1]
    row = encode(tokenizer, example, max_prompt=512, max_target=32)
    prompt = fitted_prompt_ids(tokenizer, example.query, example.passage, 512)
    assert row["input_ids"][: len(prompt)] == prompt
    assert row["labels"][: len(prompt)] == [IGNORE] * len(prompt)
    answer = row["labels"][len(prompt):]
    assert answer == row["input_ids"][len(prompt):] and answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer[:-1]) == example.target


def test_sft_loss_is_the_cross_entropy_of_answer_tokens_only(tiny_bytes_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from qfsum.training.writer.sft import sft_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir)
    rows = [encode(tokenizer, e, 512, 32) for e in TRAIN[:2]]
    loss = sft_loss(model, rows, tokenizer.pad_token_id)
    terms = []
    for row in rows:  # one example at a time, no padding: CE of each answer token given everything before it
        logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
        for t, label in enumerate(row["labels"]):
            if label != IGNORE:
                terms.append(-torch.log_softmax(logits[t - 1], -1)[label])
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-4)


def test_sft_loss_computes_logits_from_the_first_answer_token_only_with_the_same_gradients(tiny_bytes_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from qfsum.training.writer.sft import sft_loss
    from qfsum.training.writer.taskdata import collate

    model = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir)
    rows = [encode(tokenizer, e, 512, 32) for e in TRAIN[:3]]
    widths = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: widths.append(out.shape[1]))
    loss = sft_loss(model, rows, tokenizer.pad_token_id)
    hook.remove()
    labels = collate(rows, tokenizer.pad_token_id)["labels"]
    first = int((labels != IGNORE).any(0).nonzero()[0])
    assert widths == [labels.shape[1] - first + 1] and widths[0] < labels.shape[1]  # not the prompt's logits
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    full = model(**collate(rows, tokenizer.pad_token_id)).loss  # the library's loss over every position
    expected = torch.autograd.grad(full, [p for p in model.parameters() if p.requires_grad])
    assert loss.item() == pytest.approx(full.item(), rel=1e-5)
    assert all(torch.allclose(g, e, atol=1e-6, rtol=1e-4) for g, e in zip(grads, expected, strict=True))


def test_sft_loss_of_a_model_without_logits_to_keep_is_the_same(tiny_bytes_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from qfsum.training.writer.sft import sft_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir)

    class Plain(torch.nn.Module):  # an older architecture: forward(input_ids, attention_mask) only
        device = model.device

        def forward(self, input_ids, attention_mask):
            return model(input_ids=input_ids, attention_mask=attention_mask)

    rows = [encode(tokenizer, e, 512, 32) for e in TRAIN[:3]]
    assert sft_loss(Plain(), rows, tokenizer.pad_token_id).item() == pytest.approx(
        sft_loss(model, rows, tokenizer.pad_token_id).item(), rel=1e-5)


def test_sft_loss_does_not_hide_a_type_error_raised_inside_the_model(tiny_bytes_dir, tokenizer, monkeypatch):
    from transformers import AutoModelForCausalLM

    from qfsum.training.writer.sft import sft_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir)

    def broken(*args, **kwargs):
        raise TypeError("a bug inside a layer")

    monkeypatch.setattr(model.model.layers[0], "forward", broken)
    with pytest.raises(TypeError, match="a bug inside a layer"):
        sft_loss(model, [encode(tokenizer, TRAIN[0], 512, 32)], tokenizer.pad_token_id)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients_and_the_same_run(tiny_bytes_dir, task_files, tmp_path,
                                                                                   tokenizer):
    from qfsum.training.writer.sft import load_trainable, sft_loss

    train, val = task_files
    rows = [encode(tokenizer, e, 512, 32) for e in TRAIN[:3]]
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same fresh LoRA weights (and dropout masks) both times
        config = _config(tiny_bytes_dir, train, val, tmp_path / "out", gradient_checkpointing=checkpointing)
        model, _ = load_trainable(config)
        assert model.get_base_model().is_activation_checkpointing == checkpointing
        torch.manual_seed(1)
        loss = sft_loss(model, rows, tokenizer.pad_token_id)
        trainable = [p for p in model.parameters() if p.requires_grad]
        results.append((loss, torch.autograd.grad(loss, trainable), config.identity()))
    (loss, grads, identity), (loss_ckpt, grads_ckpt, identity_ckpt) = results
    assert loss.item() == pytest.approx(loss_ckpt.item(), rel=1e-6)
    assert all(torch.allclose(g, c, atol=1e-7, rtol=1e-5) for g, c in zip(grads, grads_ckpt, strict=True))
    assert identity == identity_ckpt  # a rerun with or without it resumes the same run


# -- SFT runs, LoRA adapters --------------------------------------------------------------------------


def test_sft_lora_run_saves_a_small_adapter_that_loads_on_its_base(tiny_bytes_dir, task_files, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from qfsum.assets import load_generator_uncached
    from qfsum.training.writer.sft import train_sft

    train, val = task_files
    out = tmp_path / "sft"
    run = train_sft(_config(tiny_bytes_dir, train, val, out), progress=False, command="qfsum train sft ...")
    assert run["status"] == "done" and run["step"] == 4
    assert [h["step"] for h in run["history"]] == [2, 4] and run["best"]["step"] in (2, 4)
    assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_bytes_dir)
    assert "LoRA adapter" in (out / "README.md").read_text()
    assert not (out / "checkpoint").exists() and not (out / "best").exists()
    full = sum(p.stat().st_size for p in Path(tiny_bytes_dir).glob("*.safetensors"))
    assert (out / "adapter_model.safetensors").stat().st_size < full / 2

    merged, _ = load_generator_uncached(str(out), "float32")  # the path a pipeline's writer takes
    wrapped = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_bytes_dir), str(out)).eval()
    plain = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir).eval()
    ids = torch.tensor([[5, 60, 70, 80, 90]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, wrapped(ids).logits, atol=1e-4)
        assert not torch.allclose(merged(ids).logits, plain(ids).logits, atol=1e-4)  # training changed it

    again = train_sft(_config(tiny_bytes_dir, train, val, out), progress=False)
    assert again.get("reported")  # a finished run is reported, not retrained
    with pytest.raises(QfsumError, match="another training run"):
        train_sft(_config(tiny_bytes_dir, train, val, out, lr=1e-3), progress=False)


def test_interrupted_sft_resumes_from_its_checkpoint(tiny_bytes_dir, task_files, tmp_path, monkeypatch):
    import qfsum.training.writer.sft as sft

    train, val = task_files
    out = tmp_path / "resume"
    calls = {"n": 0}
    real = sft.sft_loss

    def dies_at_step_three(model, batch, pad):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(model, batch, pad)

    monkeypatch.setattr(sft, "sft_loss", dies_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(_config(tiny_bytes_dir, train, val, out, lora=False, lr=1e-3), progress=False)
    assert json.loads((out / "qfsum_training.json").read_text())["step"] == 2
    monkeypatch.setattr(sft, "sft_loss", real)
    run = sft.train_sft(_config(tiny_bytes_dir, train, val, out, lora=False, lr=1e-3), progress=False)
    assert run["step"] == 4 and (out / "model.safetensors").exists()
    assert [h["step"] for h in run["history"]] == [2, 4]


# -- DPO ------------------------------------------------------------------------------------------------


def test_dpo_loss_on_hand_made_log_probabilities():
    from qfsum.training.writer.dpo import dpo_loss

    chosen, rejected = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0])
    ref_chosen, ref_rejected = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -5.0])
    # margins: (1 - (-1)) = 2 and (0 - 1) = -1; loss = mean(-log sigmoid(beta * margin))
    expected = (-math.log(1 / (1 + math.exp(-0.2))) - math.log(1 / (1 + math.exp(0.1)))) / 2
    assert dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1).item() == pytest.approx(expected, rel=1e-6)
    # equal to the reference: log 2, whatever beta
    assert dpo_loss(ref_chosen, ref_rejected, ref_chosen, ref_rejected, beta=3.0).item() == pytest.approx(math.log(2))
    policy = torch.tensor([-10.0], requires_grad=True)
    dpo_loss(policy, torch.tensor([-10.0]), torch.tensor([-10.0]), torch.tensor([-10.0])).backward()
    assert policy.grad.item() < 0  # raising the chosen answer's probability lowers the loss


def test_answer_logprobs_sum_the_answer_tokens(tiny_bytes_dir):
    from transformers import AutoModelForCausalLM

    from qfsum.training.writer.dpo import answer_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir).eval()
    prompts, answers = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]]
    with torch.no_grad():
        got = answer_logprobs(model, prompts, answers, pad=0)
        for i, (p, a) in enumerate(zip(prompts, answers)):
            logp = torch.log_softmax(model(input_ids=torch.tensor([p + a])).logits[0], -1)
            want = sum(logp[len(p) + j - 1, t] for j, t in enumerate(a))
            assert got[i].item() == pytest.approx(want.item(), abs=1e-4)


def test_dpo_run_builds_pairs_and_trains(tiny_bytes_dir, task_files, tmp_path, monkeypatch):
    from qfsum.training.writer import dpo
    from qfsum.training.writer.dpo import DPOOptions, load_reward, train_dpo

    train, val = task_files
    out = tmp_path / "dpo"
    # A random model's answers share nothing with the passage; a pluggable reward still ranks them.
    monkeypatch.setitem(dpo.REWARDS, "length", lambda answer, example: float(len(answer)))
    options = DPOOptions(samples=3, max_new_tokens=8, temperature=1.5, reward="length")
    run = train_dpo(_config(tiny_bytes_dir, train, val, out, max_steps=2, eval_steps=2), options, progress=False)
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert pairs and run["data"]["pairs"] == len(pairs)
    assert all(p["reward_chosen"] > p["reward_rejected"] and len(p["reference"]) == 2 for p in pairs)
    assert run["status"] == "done" and (out / "adapter_model.safetensors").exists()
    assert load_reward("qfsum.training.writer.dpo:rouge_reward") is load_reward("rouge")
    with pytest.raises(QfsumError, match="unknown reward"):
        load_reward("nope")


# -- distillation -------------------------------------------------------------------------------------


def test_kl_loss_is_zero_against_itself_and_matches_the_definition(tiny_bytes_dir, tokenizer):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from qfsum.training.writer.distill import kl_loss

    student = AutoModelForCausalLM.from_pretrained(tiny_bytes_dir)
    torch.manual_seed(1)
    teacher = LlamaForCausalLM(LlamaConfig(**{**student.config.to_dict(), "num_hidden_layers": 1})).eval()
    ids = torch.tensor([[5, 60, 70, 80, 90, 100]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 0]])
    s_logits = student(ids).logits
    with torch.no_grad():
        t_logits = teacher(ids).logits
    assert kl_loss(s_logits, s_logits.detach(), mask, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    loss = kl_loss(s_logits, t_logits, mask, 2.0)
    p = torch.softmax(t_logits / 2, -1)
    manual = 4 * (p * (torch.log(p) - torch.log_softmax(s_logits / 2, -1))).sum(-1)[0, 2:5].mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-4) and loss.item() > 0
    loss.backward()
    assert student.lm_head.weight.grad is not None and student.lm_head.weight.grad.abs().sum() > 0


def test_token_level_distillation_run(tiny_bytes_dir, task_files, tmp_path):
    from qfsum.training.writer.distill import DistillOptions, train_distill

    train, val = task_files
    out = tmp_path / "distill"
    options = DistillOptions(teacher=str(tiny_bytes_dir), mode="both", max_new_tokens=6)
    run = train_distill(_config(tiny_bytes_dir, train, val, out, max_steps=2, eval_steps=2), options, progress=False)
    assert run["status"] == "done" and run["data"]["mode"] == "both"
    cached = [json.loads(line) for line in (out / "teacher.jsonl").read_text().splitlines()]
    assert [c["id"] for c in cached] == [e.id for e in TRAIN]  # one line per answer, in order
    assert run["data"]["teacher_answers"] + run["data"]["dropped_empty"] == len(TRAIN)


def test_teacher_answers_resume_from_their_cache_answer_by_answer(tiny_bytes_dir, tmp_path):
    from qfsum.training.writer.teacher import AnswerCache, answer_key, teacher_answers

    cache = tmp_path / "kept" / "teacher.jsonl"
    first = teacher_answers(str(tiny_bytes_dir), TRAIN[:3], cache, 512, 6, progress=False)
    assert first.written == 3 and len(cache.read_text().splitlines()) == 3
    with cache.open("a") as handle:  # a run stopped while writing its fourth line
        handle.write('{"key": "' + answer_key(str(tiny_bytes_dir), 6, TRAIN[3])[:5])
    second = teacher_answers(str(tiny_bytes_dir), TRAIN, cache, 512, 6, progress=False)
    assert second.written == 3  # the three cached answers are reused, the torn one is written again
    assert set(AnswerCache(cache).answers) == {answer_key(str(tiny_bytes_dir), 6, e) for e in TRAIN}
    changed = [TaskExample(e.id, e.query, e.passage + " New evidence.", e.target) for e in TRAIN[:2]]
    assert teacher_answers(str(tiny_bytes_dir), changed, cache, 512, 6, progress=False).written == 2
    assert teacher_answers(str(tiny_bytes_dir), TRAIN, cache, 512, 8, progress=False).written == len(TRAIN)


def test_teacher_answers_less_faithful_than_the_bar_are_left_out(tmp_path):
    from qfsum.training.writer.teacher import AnswerCache, answer_key, teacher_answers

    cache = AnswerCache(tmp_path / "teacher.jsonl")
    written = {"t0": "Item 0 costs 0 euros.", "t1": "Item 1 costs 999 euros in Paris.", "t2": "  "}
    for example in TRAIN[:3]:  # answers already cached: no teacher is loaded ("nobody" is no model)
        cache.add(answer_key("nobody", 6, example), example.id, written[example.id])
    answered = teacher_answers("nobody", TRAIN[:3], cache.path, 512, 6, min_faithfulness=0.9, progress=False)
    assert [e.target for e in answered.examples] == ["Item 0 costs 0 euros."]
    assert (answered.written, answered.empty, answered.unfaithful) == (0, 1, 1)
    assert len(teacher_answers("nobody", TRAIN[:3], cache.path, 512, 6, progress=False).examples) == 2


def test_teacher_only_writes_the_answers_and_trains_nothing(capsys, tiny_bytes_dir, task_files, tmp_path):
    from conftest import cli

    train, _ = task_files
    args = ["train", "distill", "--teacher", tiny_bytes_dir, "--student", tiny_bytes_dir, "--data", train,
            "--val-split", "none", "--out", tmp_path / "d", "--teacher-max-new-tokens", "4", "--teacher-only",
            "--no-progress"]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert f"teacher: {len(TRAIN)} answers written now, {len(TRAIN)} in all" in out
    assert not (tmp_path / "d" / "adapter_model.safetensors").exists()
    code, out, err = cli(capsys, *args)
    assert code == 0 and f"teacher: 0 answers written now, {len(TRAIN)} in all" in out


def test_token_level_distillation_refuses_other_tokenizers(tiny_bytes_dir, tiny_causal_dir, task_files, tmp_path):
    from qfsum.training.writer.distill import DistillOptions, train_distill

    train, val = task_files
    options = DistillOptions(teacher=str(tiny_causal_dir), mode="token")
    with pytest.raises(QfsumError, match="share a tokenizer"):
        train_distill(_config(tiny_bytes_dir, train, val, tmp_path / "d"), options, progress=False)


def test_cli_errors_are_one_line(capsys, task_files, tmp_path):
    from conftest import assert_one_error_line, cli

    train, _ = task_files
    code, _, err = cli(capsys, "train", "sft", "--data", train, "--out", tmp_path / "x")
    assert "validation would read the training file" in assert_one_error_line(code, err)
    code, _, err = cli(capsys, "train", "dpo", "--model", "smollm2", "--data", train, "--out", tmp_path / "y",
                       "--val-split", "none", "--samples", "1")
    assert "at least 2 samples" in assert_one_error_line(code, err)


def test_bench_task_scores_a_model_on_task_examples(capsys, tiny_bytes_dir, task_files, tmp_path):
    from conftest import cli

    _, val = task_files
    code, out, err = cli(capsys, "bench", "task", "--model", tiny_bytes_dir, "--data", val, "--max-new-tokens", "4",
                         "--dtype", "float32", "--out", tmp_path / "t", "--no-progress")
    assert code == 0, err
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["n"] == 1 and 0 <= metrics["rougeLsum"] <= 100
    assert len((tmp_path / "t" / "predictions.jsonl").read_text().splitlines()) == 1


def test_sft_goes_on_from_an_adapter_and_the_new_adapter_loads_on_top_of_it(tiny_bytes_dir, task_files, tmp_path):
    """`--base ADAPTER` (e.g. the shipped smollm2-qmsum-windows): a fresh LoRA is trained on the first
    adapter merged into its base, and the result names the first adapter as its base, so it loads as
    base + first + second."""
    from qfsum.assets import load_generator_uncached
    from qfsum.training.writer.sft import train_sft

    train, val = task_files
    first, second = tmp_path / "first", tmp_path / "second"
    train_sft(_config(tiny_bytes_dir, train, val, first, max_steps=2), progress=False)
    train_sft(_config(first, train, val, second, max_steps=2, seed=1), progress=False)
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == str(first)

    from peft import PeftModel

    def load(folder: Path) -> torch.nn.Module:
        return load_generator_uncached(str(folder), "float32")[0]

    ids = torch.tensor([[5, 60, 70, 80, 90]])
    with torch.no_grad():
        stacked = load(second)(ids).logits
        by_hand = PeftModel.from_pretrained(load(first), str(second)).eval()(ids).logits
        on_plain_base = PeftModel.from_pretrained(load(tiny_bytes_dir), str(second)).eval()(ids).logits
        assert torch.allclose(stacked, by_hand, atol=1e-4)
        assert not torch.allclose(stacked, on_plain_base, atol=1e-4)  # the first adapter is in it
        assert not torch.allclose(stacked, load(first)(ids).logits, atol=1e-4)  # and the second trained on top


def test_export_writes_a_half_precision_adapter_that_loads_like_the_original(capsys, tiny_bytes_dir, task_files,
                                                                              tmp_path):
    from conftest import assert_one_error_line, cli
    from safetensors.torch import load_file

    from qfsum.assets import load_generator_uncached
    from qfsum.training.writer.sft import train_sft

    train, val = task_files
    run_dir, shipped = tmp_path / "sft", tmp_path / "shipped"
    train_sft(_config(tiny_bytes_dir, train, val, run_dir, max_steps=2), progress=False)
    code, out, err = cli(capsys, "train", "export", "--model", run_dir, "--out", shipped)
    assert code == 0, err
    weights = load_file(shipped / "adapter_model.safetensors")
    assert weights and all(t.dtype == torch.float16 for t in weights.values())
    assert (shipped / "adapter_model.safetensors").stat().st_size < (run_dir / "adapter_model.safetensors").stat().st_size
    assert {"README.md", "adapter_config.json", "qfsum_training.json", "tokenizer.json"} <= {p.name for p in shipped.iterdir()}
    assert not (shipped / "validation_predictions.json").exists()
    card = (shipped / "README.md").read_text()
    assert str(run_dir.resolve()) not in card and str(shipped.resolve()) in card and "float16" in card

    original, _ = load_generator_uncached(str(run_dir), "float32")
    exported, _ = load_generator_uncached(str(shipped), "float32")
    ids = torch.tensor([[5, 60, 70, 80, 90]])
    with torch.no_grad():
        assert torch.allclose(original(ids).logits, exported(ids).logits, atol=1e-2)

    code, _, err = cli(capsys, "train", "export", "--model", tmp_path, "--out", tmp_path / "x")
    assert "not a trained model" in assert_one_error_line(code, err)


def test_faithful_reward_never_prefers_the_less_faithful_answer():
    from qfsum.training.writer.dpo import answer_faithfulness, faithful_reward, pick_pair
    from qfsum.training.writer.taskdata import TaskExample

    example = TaskExample(id="x", query="What was the overrun?",
                          passage="The overrun on the library roof is 120,000 euros.\nThe council will apply to the heritage fund.",
                          target="The overrun is 120,000 euros; the council will apply to the heritage fund.")
    faithful = "The overrun on the roof is 120,000 euros."
    invented = "The overrun is 1.3 million euros and the council will apply to the heritage fund for 120,000 euros."
    nothing = "Yes."
    assert answer_faithfulness(faithful, example) == 1.0
    assert answer_faithfulness(invented, example) < 0.5
    assert answer_faithfulness("", example) == 0.0
    # the invented answer shares far more words with the reference and may win on reward, but a pair
    # never rejects the more faithful answer: here it is rejected against "Yes.", not against the faithful one
    answers = [invented, faithful, nothing]
    (high, chosen), (low, rejected) = pick_pair(answers, example, faithful_reward)
    assert high > low and rejected != 1
    assert answer_faithfulness(answers[chosen], example) >= answer_faithfulness(answers[rejected], example)
    (_, chosen), (_, rejected) = pick_pair([faithful, nothing], example, faithful_reward)
    assert (chosen, rejected) == (0, 1)
    assert pick_pair([faithful, faithful], example, faithful_reward) is None  # all tie: no pair
