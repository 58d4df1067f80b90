"""SegEnc: window construction, equivalence with the backbone, generation, save/load; the input
builders and the segenc/led/bart writers. Tiny random BART/LED models with the MiniLM tokenizer."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from qfsum import Pipeline, PipelineConfig, QfsumError
from qfsum.document import Document
from qfsum.writers import WriterConfig
from qfsum.models.seq2seq_inputs import (
    PairTemplate,
    TruncatedInputs,
    document_text,
    pair_template,
)
from qfsum.models.segenc import (
    SegEncConfig,
    SegEncForConditionalGeneration,
    WindowInputs,
    make_windows,
    window_spans,
)
from qfsum.retrieval import ScorerConfig
from qfsum.segment import SegmenterConfig

TEMPLATE = PairTemplate((101,), (102,), (102,))  # [CLS] query [SEP] chunk [SEP]
DOCUMENT = (
    "The team met to discuss the new remote control. The case will be made of rubber because it is cheap. "
    "Marketing said young people want a fancy look. The budget is twelve euros fifty per unit. "
    "They dropped voice recognition because of the budget. The meeting closed at noon."
)
QUERY = "What was decided about the budget?"


@pytest.fixture(scope="module")
def backbone(tiny_seq2seq_dir):
    return AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq_dir).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_seq2seq_dir):
    return AutoTokenizer.from_pretrained(tiny_seq2seq_dir)


@pytest.fixture(scope="module")
def segenc(backbone):
    return SegEncForConditionalGeneration.from_backbone(backbone, segment_length=40, max_input=400).eval()


@pytest.fixture(scope="module")
def segenc_dir(segenc, tokenizer, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-segenc")
    segenc.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _batch(inputs, pairs):
    return inputs.collate([inputs.encode(q, d) for q, d in pairs])


# -- windows ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "length", "stride", "expected"),
    [
        (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),
        (10, 4, 4, [(0, 4), (4, 8), (8, 10)]),
        (3, 4, 2, [(0, 3)]),
        (0, 4, 2, [(0, 0)]),  # an empty document: the query alone
        (9, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 9)]),
    ],
)
def test_window_spans(n, length, stride, expected):
    assert window_spans(n, length, stride) == expected


def test_window_spans_rejects_bad_strides():
    with pytest.raises(ValueError):
        window_spans(10, 4, 5)
    with pytest.raises(ValueError):
        window_spans(10, 4, 0)


@pytest.mark.parametrize("overlap", [True, False])
def test_windows_carry_the_query_and_cover_the_document(overlap):
    question, document = [7, 8, 9], list(range(1000, 1100))
    windows = make_windows(question, document, TEMPLATE, segment_length=16, overlap=overlap, max_input=1000)
    chunk = 16 - 3 - 3  # window minus query minus [CLS] [SEP] [SEP]
    stride = chunk // 2 if overlap else chunk
    for w in windows:
        assert w.input_ids == [101, 7, 8, 9, 102, *document[w.start : w.end], 102]  # query first, every window
        assert len(w.input_ids) <= 16
    assert [w.start for w in windows] == list(range(0, windows[-1].start + 1, stride))
    assert windows[-1].end == len(document)
    covered = {i for w in windows for i in range(w.start, w.end)}
    assert covered == set(range(len(document)))
    if overlap:  # each window shares half of its chunk with the next
        assert all(a.end - b.start == chunk - stride for a, b in itertools.pairwise(windows[:-1]))


def test_windows_stop_at_max_input():
    windows = make_windows([7], list(range(500)), TEMPLATE, segment_length=20, max_input=64)
    assert windows[-1].end == 64 and all(w.end <= 64 for w in windows)


def test_a_query_that_fills_the_window_is_an_error():
    with pytest.raises(QfsumError, match="no room"):
        make_windows(list(range(14)), list(range(50)), TEMPLATE, segment_length=16)


def test_pair_template_is_the_tokenizers_own(tokenizer, tiny_bytes_dir):
    assert pair_template(tokenizer) == PairTemplate((tokenizer.cls_token_id,), (tokenizer.sep_token_id,), (tokenizer.sep_token_id,))
    byte_level = AutoTokenizer.from_pretrained(tiny_bytes_dir)  # no pair template: the eos token delimits
    assert pair_template(byte_level) == PairTemplate((), (byte_level.eos_token_id,), ())


def test_window_inputs_use_real_tokens_and_pad_whole_windows(tokenizer):
    inputs = WindowInputs(tokenizer, segment_length=40, max_input=400)
    windows = inputs.windows(QUERY, DOCUMENT)
    query = tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    assert len(windows) > 2
    assert all(w.input_ids[1 : 1 + len(query)] == query for w in windows)
    batch = _batch(inputs, [(QUERY, DOCUMENT), (QUERY, "Short.")])
    n = len(windows)
    assert batch["input_ids"].shape == (2, n * 40)
    mask = batch["attention_mask"].reshape(2, n, 40)
    assert mask[0].sum(-1).tolist() == [len(w.input_ids) for w in windows]
    assert mask[1, 1:].sum() == 0  # the short document's padding windows hold nothing


def test_single_windows_are_padded_only_to_the_longest(tokenizer):
    inputs = WindowInputs(tokenizer, segment_length=512)
    batch = _batch(inputs, [(QUERY, "Short."), (QUERY, DOCUMENT)])
    assert batch["input_ids"].shape[1] == len(inputs.windows(QUERY, DOCUMENT)[0].input_ids) < 512


# -- the model ----------------------------------------------------------------------------------------


def test_one_window_is_exactly_the_backbone(segenc, backbone, tokenizer):
    inputs = WindowInputs.for_model(segenc, tokenizer)
    batch = _batch(inputs, [(QUERY, "The budget is twelve euros."), (QUERY, "Rubber.")])
    assert batch["input_ids"].shape[1] <= 40  # one window each
    decoder = torch.tensor([[tokenizer.sep_token_id, 2000, 2001]] * 2)
    with torch.no_grad():
        ours = segenc(**batch, decoder_input_ids=decoder).logits
        theirs = backbone(**batch, decoder_input_ids=decoder).logits
    assert torch.equal(ours, theirs)
    settings = dict(num_beams=4, max_new_tokens=12, do_sample=False)
    assert torch.equal(segenc.generate(**batch, **settings), backbone.generate(**batch, **settings))


def test_windows_are_encoded_alone_and_the_decoder_reads_them_all(segenc, backbone, tokenizer):
    inputs = WindowInputs.for_model(segenc, tokenizer)
    batch = _batch(inputs, [(QUERY, DOCUMENT), (QUERY, "Short.")])
    with torch.no_grad():
        states = segenc.get_encoder()(**batch).last_hidden_state  # (B, W * L, H)
        ids, mask = batch["input_ids"].reshape(-1, 40), batch["attention_mask"].reshape(-1, 40)
        for i in range(ids.shape[0]):
            window = states.reshape(-1, 40, states.shape[-1])[i]
            if mask[i].any():
                alone = backbone.get_encoder()(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1]).last_hidden_state[0]
                assert torch.allclose(window[mask[i].bool()], alone[mask[i].bool()], atol=1e-5)
            else:
                assert torch.count_nonzero(window) == 0  # padding windows are not encoded
        decoder = torch.tensor([[tokenizer.sep_token_id, 2000]] * 2)
        before = segenc(**batch, decoder_input_ids=decoder).logits
        changed = {k: v.clone() for k, v in batch.items()}
        last = int(batch["attention_mask"][0].nonzero().max())  # the last real token of the last window
        changed["input_ids"][0, last - 1] = 3000
        after = segenc(**changed, decoder_input_ids=decoder).logits
    assert not torch.allclose(before[0], after[0])  # the decoder reads the last window too
    assert torch.equal(before[1], after[1])


def test_window_batches_change_nothing(segenc, tokenizer):
    inputs = WindowInputs.for_model(segenc, tokenizer)
    batch = _batch(inputs, [(QUERY, DOCUMENT)])
    chunked = SegEncForConditionalGeneration(SegEncConfig(**{**segenc.config.to_dict(), "window_batch_size": 2}),
                                             segenc.backbone).eval()
    with torch.no_grad():
        assert torch.allclose(chunked.get_encoder()(**batch).last_hidden_state,
                              segenc.get_encoder()(**batch).last_hidden_state, atol=1e-6)


def test_beam_search_shapes_and_determinism(segenc, tokenizer):
    inputs = WindowInputs.for_model(segenc, tokenizer)
    batch = _batch(inputs, [(QUERY, DOCUMENT), (QUERY, "Short.")])
    settings = dict(num_beams=4, num_return_sequences=2, max_new_tokens=10, do_sample=False)
    first = segenc.generate(**batch, **settings)
    assert first.shape[0] == 4 and first.shape[1] <= 11  # start token + 10
    assert (first[:, 0] == segenc.config.decoder_start_token_id).all()
    assert torch.equal(first, segenc.generate(**batch, **settings))


def test_save_and_load_round_trip(segenc, segenc_dir, tokenizer):
    loaded = AutoModelForSeq2SeqLM.from_pretrained(segenc_dir).eval()  # the Auto classes know "segenc"
    assert isinstance(loaded, SegEncForConditionalGeneration)
    assert (loaded.config.segment_length, loaded.config.max_input) == (40, 400)
    inputs = WindowInputs.for_model(loaded, tokenizer)
    batch = _batch(inputs, [(QUERY, DOCUMENT)])
    decoder = torch.tensor([[tokenizer.sep_token_id, 2000]])
    with torch.no_grad():
        assert torch.equal(loaded(**batch, decoder_input_ids=decoder).logits, segenc(**batch, decoder_input_ids=decoder).logits)
    settings = dict(num_beams=4, max_new_tokens=10)
    assert torch.equal(loaded.generate(**batch, **settings), segenc.generate(**batch, **settings))
    assert loaded.backbone.lm_head.weight.data_ptr() == loaded.backbone.model.shared.weight.data_ptr()  # still tied


def test_a_decoder_only_backbone_is_refused(tiny_causal_dir):
    from transformers import AutoConfig

    with pytest.raises(QfsumError, match="encoder-decoder"):
        SegEncConfig(backbone=AutoConfig.from_pretrained(tiny_causal_dir).to_dict())


# -- truncating inputs and the writers ----------------------------------------------------------------


def test_truncated_inputs_fit_the_limit_and_mark_the_query(tokenizer):
    inputs = TruncatedInputs(tokenizer, max_length=30, global_query=True)
    features = inputs.encode(QUERY, DOCUMENT)
    query = tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    assert len(features["input_ids"]) == 30
    assert features["input_ids"][: len(query) + 2] == [tokenizer.cls_token_id, *query, tokenizer.sep_token_id]
    assert features["global_attention_mask"] == [1] * (len(query) + 2) + [0] * (30 - len(query) - 2)
    batch = inputs.collate([features, inputs.encode(QUERY, "Short.")])
    assert batch["input_ids"].shape == batch["global_attention_mask"].shape == (2, 30)
    with pytest.raises(QfsumError, match="query is too long"):
        TruncatedInputs(tokenizer, max_length=16).encode(QUERY, DOCUMENT)


def _pipeline(kind: str, model: Path) -> Pipeline:
    return Pipeline(PipelineConfig(segmenter=SegmenterConfig(kind="turn"), scorer=ScorerConfig(kind="lead"),
                                   writer=WriterConfig(kind=kind, model=str(model), max_new_tokens=8, num_beams=2)))


MEETING = Document.from_units([("Ann", "The budget is twelve euros."), ("Bob", "Rubber is cheap."),
                               ("Ann", "We drop voice recognition.")])


@pytest.mark.parametrize("kind", ["segenc", "led", "bart"])
def test_writers_read_every_segment_in_document_order(kind, segenc_dir, tiny_led_dir, tiny_seq2seq_dir):
    model = {"segenc": segenc_dir, "led": tiny_led_dir, "bart": tiny_seq2seq_dir}[kind]
    pipeline = _pipeline(kind, model)
    summary = pipeline.summarize(MEETING, QUERY)
    assert summary.text.strip()
    assert [e.segment.index for e in summary.evidence] == [0, 1, 2]
    again = pipeline.summarize_many(MEETING, [QUERY, "Why rubber?"])
    assert again[0].text == summary.text  # batching does not change the answer


def test_led_writer_puts_global_attention_on_the_query(tiny_led_dir, monkeypatch):
    pipeline = _pipeline("led", tiny_led_dir)
    seen = {}
    original = pipeline.writer.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(pipeline.writer.model, "generate", spy)
    pipeline.summarize(MEETING, QUERY)
    query = len(pipeline.writer.tokenizer(QUERY, add_special_tokens=False)["input_ids"])
    assert seen["global_attention_mask"][0].tolist()[: query + 3] == [1] * (query + 2) + [0]


def test_writer_errors_are_one_line(tiny_causal_dir, tiny_seq2seq_dir, segenc_dir):
    with pytest.raises(QfsumError, match="not an encoder-decoder"):
        _pipeline("bart", tiny_causal_dir)
    with pytest.raises(QfsumError, match="needs an LED model"):
        _pipeline("led", tiny_seq2seq_dir)
    with pytest.raises(QfsumError, match="SegEnc model"):
        _pipeline("bart", segenc_dir)


def test_document_text_is_in_document_order():
    from qfsum.document import Evidence

    segments = [Evidence(s, float(-s.index)) for s in reversed(MEETING.units)]
    assert document_text(segments) == MEETING.text


def test_writer_budget_caps_the_tokens_read(segenc_dir, tiny_seq2seq_dir):
    from qfsum.writers import build_writer

    segenc_writer = build_writer(WriterConfig(kind="segenc", model=str(segenc_dir), input_tokens=24))
    assert segenc_writer.inputs.max_input == segenc_writer.model.config.max_input == 24
    assert segenc_writer.inputs.segment_length == 40  # the saved model's windows
    assert build_writer(WriterConfig(kind="bart", model=str(tiny_seq2seq_dir), input_tokens=24)).inputs.max_length == 24
    assert build_writer(WriterConfig(kind="bart", model=str(tiny_seq2seq_dir))).inputs.max_length == 1024
