"""Length extrapolation of a trained LOCOST model: GSG loss with inputs cut at L and at 2L (and more).

LOCOST's encoder has no position table, so a model trained on L-token inputs reads longer ones as is.
This reads GSG examples built from long pieces of a corpus and reports the mean target loss when the
input is cut at each length: it must run without error, and the loss should not blow up past L.

    python benchmarks/locost_extrapolation.py runs/locost-gsg-tiny --data ../shared/data/qmsum --split val \
        --lengths 512,1024 --piece-words 1400 --limit 20
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved LOCOST model folder (qfsum train locost --out)")
    parser.add_argument("--data", required=True, help="corpus: QMSum root, folder of .txt, .txt or JSONL")
    parser.add_argument("--split", default="val")
    parser.add_argument("--lengths", default="512,1024", help="input lengths in tokens (the first is the trained one)")
    parser.add_argument("--piece-words", type=int, default=1400, help="words per GSG piece: long enough for the largest length")
    parser.add_argument("--limit", type=int, default=20, help="examples (default 20)")
    args = parser.parse_args()

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import qfsum.models.locost  # noqa: F401  (Auto registration)
    from qfsum.models.seq2seq_inputs import TruncatedInputs
    from qfsum.training.seq2seq.gsg import GSG_QUERY, gsg_records, read_corpus

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
    records = list(gsg_records(read_corpus(args.data, args.split), piece_words=args.piece_words))[: args.limit]
    lengths = [int(x) for x in args.lengths.split(",")]
    results = {}
    for length in lengths:
        inputs = TruncatedInputs(tokenizer, length)
        losses, read = [], []
        start = time.perf_counter()
        with torch.inference_mode():
            for record in records:
                batch = inputs.collate([inputs.encode(GSG_QUERY, record["document"])])
                labels = torch.tensor([tokenizer(record["summary"], max_length=128, truncation=True)["input_ids"]])
                losses.append(model(**batch, labels=labels).loss.item())
                read.append(batch["input_ids"].shape[1])
        results[length] = {"mean_loss": sum(losses) / len(losses), "mean_input_tokens": sum(read) / len(read),
                           "max_input_tokens": max(read), "seconds": time.perf_counter() - start}
        print(f"inputs cut at {length:>6}: mean input {results[length]['mean_input_tokens']:.0f} tokens "
              f"(max {results[length]['max_input_tokens']}), mean GSG loss {results[length]['mean_loss']:.3f}, "
              f"{results[length]['seconds']:.1f} s for {len(records)} examples")
    print(json.dumps({"model": args.model, "examples": len(records), "results": results}))


if __name__ == "__main__":
    main()
