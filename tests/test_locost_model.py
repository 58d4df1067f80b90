"""LOCOST encoder-decoder: generation, cache, chunking, padding, save/load, Auto classes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from qfsum.models.kv_cache import cache_kwarg, output_cache
from qfsum.models.locost import LocostConfig, LocostForConditionalGeneration

TINY = dict(vocab_size=40, d_model=32, encoder_layers=2, decoder_layers=2, decoder_attention_heads=4, d_ff=48,
            state_size=8, dropout=0.0, max_decoder_positions=64)


def tiny_model(**overrides) -> LocostForConditionalGeneration:
    torch.manual_seed(0)
    model = LocostForConditionalGeneration(LocostConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so greedy decoding does not repeat one token
        for name, param in model.named_parameters():
            if param.dim() == 2 and "ssm" not in name:
                param.mul_(20)
    return model


@pytest.fixture(scope="module")
def model() -> LocostForConditionalGeneration:
    return tiny_model()


INPUT = torch.tensor([[5, 9, 3, 17, 22, 8, 30, 4, 11]])


def test_generate_matches_a_manual_greedy_loop(model):
    generated = model.generate(INPUT, max_new_tokens=8, do_sample=False, num_beams=1, eos_token_id=None)
    decoder = torch.tensor([[model.config.decoder_start_token_id]])
    with torch.no_grad():
        for _ in range(8):  # no cache: the whole prefix every step
            logits = model(input_ids=INPUT, decoder_input_ids=decoder, use_cache=False).logits
            decoder = torch.cat([decoder, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, decoder)
    assert len(set(decoder[0, 1:].tolist())) > 1  # a real test: not one token repeated


def test_cached_decoding_equals_full_decoding(model):
    decoder = torch.tensor([[1, 7, 12, 5, 19]])
    with torch.no_grad():
        full = model(input_ids=INPUT, decoder_input_ids=decoder, use_cache=False).logits
        out = model(input_ids=INPUT, decoder_input_ids=decoder[:, :3], use_cache=True)
        steps = [out.logits]
        for t in (3, 4):
            out = model(encoder_outputs=(out.encoder_last_hidden_state,), attention_mask=None,
                        decoder_input_ids=decoder[:, t : t + 1], **cache_kwarg(output_cache(out)), use_cache=True)
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)


def test_beam_search_runs_and_beats_or_ties_greedy_score(model):
    kwargs = dict(max_new_tokens=6, do_sample=False, eos_token_id=None, output_scores=True, return_dict_in_generate=True)
    beam = model.generate(INPUT, num_beams=4, **kwargs)
    assert beam.sequences.shape == (1, 7)

    def log_prob(seq: torch.Tensor) -> float:
        with torch.no_grad():
            logits = model(input_ids=INPUT, decoder_input_ids=seq[:, :-1], use_cache=False).logits
        return logits.log_softmax(-1).gather(-1, seq[:, 1:, None]).sum().item()

    greedy = model.generate(INPUT, num_beams=1, max_new_tokens=6, do_sample=False, eos_token_id=None)
    assert log_prob(beam.sequences) >= log_prob(greedy) - 1e-4


def test_batched_generation_with_padding_equals_one_by_one(model):
    short = torch.tensor([[5, 9, 3, 17]])
    padded = torch.full((2, INPUT.shape[1]), model.config.pad_token_id)
    padded[0], padded[1, :4] = INPUT[0], short[0]
    mask = (torch.arange(INPUT.shape[1]) < torch.tensor([[INPUT.shape[1]], [4]])).long()
    kwargs = dict(max_new_tokens=5, do_sample=False, eos_token_id=None)
    both = model.generate(padded, attention_mask=mask, **kwargs)
    assert torch.equal(both[0], model.generate(INPUT, **kwargs)[0])
    assert torch.equal(both[1], model.generate(short, **kwargs)[0])


def test_channel_and_token_chunking_do_not_change_the_encoder(model):
    chunked = tiny_model(channel_chunk_elements=40, ffn_chunk_tokens=4)  # 4 channels, 4 tokens at a time
    ids = torch.randint(3, 40, (2, 13))
    with torch.no_grad():
        torch.testing.assert_close(chunked.encoder(ids).last_hidden_state, model.encoder(ids).last_hidden_state,
                                   atol=1e-4, rtol=1e-4)


def test_encoder_reads_twice_the_training_length():
    model = tiny_model()
    model.train()
    loss = model(input_ids=torch.randint(3, 40, (2, 16)), labels=torch.randint(3, 40, (2, 5))).loss
    loss.backward()
    model.eval()
    with torch.no_grad():
        states = model.encoder(torch.randint(3, 40, (1, 32))).last_hidden_state
    assert states.shape == (1, 32, 32) and torch.isfinite(states).all()


def test_training_loss_reaches_every_parameter():
    model = tiny_model()
    model.train()
    model(input_ids=torch.randint(3, 40, (2, 10)), labels=torch.randint(3, 40, (2, 4))).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_labels_ignore_minus_100(model):
    labels = torch.tensor([[7, 8, -100, -100]])
    with torch.no_grad():
        masked = model(input_ids=INPUT, labels=labels).loss
        short = model(input_ids=INPUT, labels=labels[:, :2]).loss
    torch.testing.assert_close(masked, short)


def test_save_and_load_round_trip_through_the_auto_classes(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "locost"
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LocostForConditionalGeneration)
    assert loaded.lm_head.weight.data_ptr() == loaded.shared.weight.data_ptr()  # still tied
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    kwargs = dict(max_new_tokens=6, do_sample=False, eos_token_id=None)
    assert torch.equal(loaded.generate(INPUT, **kwargs), model.generate(INPUT, **kwargs))


def test_decoder_past_its_positions_is_a_clear_error(model):
    with pytest.raises(ValueError, match="64 positions"):
        model(input_ids=INPUT, decoder_input_ids=torch.ones(1, 65, dtype=torch.long))


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of decoder_attention_heads"):
        LocostConfig(d_model=30, decoder_attention_heads=4)
