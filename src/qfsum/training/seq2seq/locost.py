"""`qfsum train locost`: pre-train LOCOST with gap-sentence generation, or fine-tune it to summarize.

Both objectives run the generic seq2seq trainer (`train`: validation by generation and
ROUGE, best checkpoint, resume, progress, model card) with architecture `locost`:

- `--objective gsg`: `--data` is any text corpus (a folder of .txt, a .txt, a JSONL of documents, or
  QMSum); its GSG examples (`gsg`) are written once to `OUT-gsg/{train,val}.jsonl` (beside
  the output folder, which the trainer keeps for its own files) and reused on resume. Validation uses
  the QMSum `val` split, or else every 20th document held out.
- `--objective summarize`: `--data` is query-focused data (QMSum or JSONL), as `qfsum train seq2seq`.

The model is new, from `--config` (a preset name: tiny, small, base; or a JSON file of `LocostConfig`
fields), or continues from `--init` (a saved LOCOST model, e.g. the GSG run's output folder). No
pretrained LOCOST exists, so new models use the packaged SmolLM2 tokenizer, set up for seq2seq: pad
`<|endoftext|>`, and `<|im_end|>` appended to every text so the decoder learns where a summary ends.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any, TYPE_CHECKING

from ...assets import require_safetensors
from ...errors import QfsumError

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

TOKENIZER = "smollm2"
END, PAD = "<|im_end|>", "<|endoftext|>"
MAX_INPUT = 65536  # input tokens saved as the tokenizer's limit (the `locost` writer's default)
HELD_OUT_EVERY = 20  # GSG on a corpus without splits: every 20th document validates
PRESETS: dict[str, dict[str, Any]] = {
    # a few minutes of CPU training: the loss visibly falls
    "tiny": dict(d_model=128, encoder_layers=2, decoder_layers=2, decoder_attention_heads=4, d_ff=256, state_size=32),
    "small": dict(d_model=384, encoder_layers=6, decoder_layers=6, decoder_attention_heads=6, d_ff=1024, state_size=64),
    "base": dict(),  # LocostConfig's defaults: 12 + 12 layers, width 768, N 256 (the paper's base size)
}


def locost_tokenizer(name: str = TOKENIZER) -> Any:
    """A copy of a packaged tokenizer set up for seq2seq: pad token, end token appended to every text."""
    from tokenizers.processors import TemplateProcessing

    from ...assets import load_tokenizer

    tokenizer = copy.deepcopy(load_tokenizer(name))  # the loader's instance is cached and shared
    end = tokenizer.convert_tokens_to_ids(END)
    tokenizer.pad_token = PAD
    tokenizer.model_max_length = MAX_INPUT  # the encoder has no position limit; this is what readers cut at
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"$A {END}", pair=f"$A {END} $B {END}", special_tokens=[(END, end)])
    return tokenizer


def model_config(spec: str, tokenizer: PreTrainedTokenizerBase) -> Any:
    """A LocostConfig from a preset name or a JSON file, its token ids set from the tokenizer."""
    from ...models.locost import LocostConfig

    if spec in PRESETS:
        fields = dict(PRESETS[spec])
    else:
        path = Path(spec)
        if not path.is_file():
            raise QfsumError(f"--config: '{spec}' is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
        try:
            fields = json.loads(path.read_text())
        except ValueError as err:
            raise QfsumError(f"{path}: not valid JSON ({err})") from None
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.convert_tokens_to_ids(END),
               bos_token_id=tokenizer.bos_token_id, decoder_start_token_id=tokenizer.bos_token_id)
    try:
        return LocostConfig(**{**fields, **ids})
    except (TypeError, ValueError) as err:
        raise QfsumError(f"--config {spec}: {err}") from None


def load_locost(config: Any) -> Any:
    """The `locost` architecture of the seq2seq trainer: a saved model (`init`) or a new one (`base` = preset/JSON)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ...models.locost import LocostForConditionalGeneration
    from ...models.seq2seq_inputs import TruncatedInputs
    from ...writers.seq2seq_writers import Seq2SeqModel

    if config.init:
        if not (Path(config.init) / "config.json").is_file():
            raise QfsumError(f"--init {config.init}: not a saved model folder")
        require_safetensors(config.init)
        tokenizer = AutoTokenizer.from_pretrained(config.init)
        model = AutoModelForSeq2SeqLM.from_pretrained(config.init, use_safetensors=True)
        if not isinstance(model, LocostForConditionalGeneration):
            raise QfsumError(f"--init {config.init}: a {type(model).__name__}, not a LOCOST model")
    else:
        tokenizer = locost_tokenizer()
        model = LocostForConditionalGeneration(model_config(config.base, tokenizer))
    return Seq2SeqModel(model, tokenizer, TruncatedInputs(tokenizer, config.max_input), "locost")


def _register() -> None:
    """Add `locost` to the seq2seq trainer's architectures (its documented extension point)."""
    from .train import ARCHS

    ARCHS.setdefault("locost", "qfsum.training.seq2seq.locost:load_locost")


# -- GSG data -----------------------------------------------------------------------------------------


def gsg_data(data: str, split: str | None, out: Path, alpha: float, piece_words: int, progress: bool) -> tuple[Path, Path]:
    """Write (once) and return the GSG train and validation JSONL files of a corpus, beside `out`."""
    from .gsg import read_corpus, write_gsg

    folder = out.with_name(out.name + "-gsg")
    train, val = folder / "train.jsonl", folder / "val.jsonl"
    settings = {"data": str(Path(data).resolve()), "split": split, "alpha": alpha, "piece_words": piece_words}
    stamp = folder / "settings.json"
    if train.exists() and val.exists() and stamp.exists():
        if json.loads(stamp.read_text()) != settings:
            raise QfsumError(f"{folder}: GSG data of other settings; remove it or pick another --out")
        return train, val
    path = Path(data)
    if path.is_dir() and (path / "val").is_dir() and split:  # QMSum root: its own validation split
        documents, held_out = read_corpus(path, split), read_corpus(path, "val")
    else:
        everything = read_corpus(path, split)
        if len(everything) < 2:
            raise QfsumError(f"{data}: GSG needs at least 2 documents (one is held out for validation)")
        held_out = everything[::HELD_OUT_EVERY]
        documents = [d for i, d in enumerate(everything) if i % HELD_OUT_EVERY]
    n_train = write_gsg(documents, train, alpha, piece_words)
    n_val = write_gsg(held_out, val, alpha, piece_words)
    stamp.write_text(json.dumps(settings, indent=2) + "\n")
    if progress:
        print(f"GSG: {n_train} training and {n_val} validation examples in {folder}/")
    return train, val


# -- the command ----------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum train locost`: its own, then the seq2seq trainer's with defaults for a new model."""
    from .cli import add_trainer_arguments

    p.add_argument("--objective", required=True, choices=("gsg", "summarize"),
                   help="gsg: gap-sentence pre-training on a text corpus; summarize: query-focused fine-tuning")
    p.add_argument("--config", default="tiny", help=f"new model: a preset ({', '.join(PRESETS)}) or a JSON file of LocostConfig fields")
    p.add_argument("--init", default=None, help="continue from a saved LOCOST model (e.g. the GSG run's --out) instead")
    p.add_argument("--gsg-ratio", type=float, default=0.2, help="gsg: share of sentences that become the target (default 0.2)")
    p.add_argument("--piece-words", type=int, default=1024, help="gsg: documents are cut into pieces of this many words (default 1024)")
    add_trainer_arguments(
        p, data_help="gsg: a .txt file, a folder of .txt files, JSONL or QMSum; summarize: QMSum or JSONL",
        epochs=1.0, batch_size=4, lr=5e-4, warmup=0.05, label_smoothing=0.0, log_steps=5, val_limit=20, max_new_tokens=128,
    )


def training_config(args: argparse.Namespace) -> Any:
    """The seq2seq trainer's config for `qfsum train locost` options (writes the GSG data first)."""
    _register()
    from .cli import trainer_fields
    from .train import Seq2SeqTrainingConfig

    if args.init is None and args.config not in PRESETS and not Path(args.config).is_file():
        raise QfsumError(f"--config: '{args.config}' is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    if args.objective == "gsg":
        if not 0 < args.gsg_ratio < 1:
            raise QfsumError(f"--gsg-ratio must be in (0, 1), got {args.gsg_ratio}")
        train, val = gsg_data(args.data, args.split, Path(args.out), args.gsg_ratio, args.piece_words, not args.no_progress)
        # the GSG files replace --data and the validation options
        fields = trainer_fields(argparse.Namespace(**{**vars(args), "val_split": "none", "val_data": None}))
        fields.update(data=str(train.resolve()), split=None, val_data=str(val.resolve()), val_split="val")
    else:
        fields = trainer_fields(args)
    base = args.config if args.config in PRESETS else str(Path(args.config).resolve())
    return Seq2SeqTrainingConfig(arch="locost", base=base, init=str(Path(args.init).resolve()) if args.init else None,
                                 **fields)


def train(args: argparse.Namespace) -> None:
    """Run `qfsum train locost` and print where the model went, its loss and validation ROUGE."""
    from .cli import run_training

    config = training_config(args)
    run_training(config, args, model=load_locost(config), label=f"locost ({args.objective})")

