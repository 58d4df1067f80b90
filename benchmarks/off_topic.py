"""Where should a pipeline say "the document does not seem to answer this"? Calibrates
`off_topic_below` on real QMSum questions against questions no meeting answers.

    python benchmarks/off_topic.py --split train --meetings 60     # choose the threshold here
    python benchmarks/off_topic.py --split val                     # then check it

For each meeting, the best cosine similarity between a question and any segment (the pipeline's
segmenter, its scorer's dense encoder) is computed for the meeting's own QMSum questions that name a
topic (as the pipeline does: "Summarize the whole meeting." is never checked) and for twelve
off-topic questions. Prints the lowest on-topic and highest off-topic similarities and, per
threshold, how many real questions would be flagged and how many off-topic ones would pass.
"""

from __future__ import annotations

import argparse

from qfsum.pipeline import Pipeline, names_a_topic
from qfsum.readers import read_examples
from qfsum.retrieval import best_similarity

OFF_TOPIC = [
    "What is the capital of Australia?", "How do I bake sourdough bread?", "Who won the 2018 football World Cup?",
    "What is the boiling point of water at sea level?", "How many moons does Jupiter have?",
    "What is the best way to learn Spanish?", "Who painted the Mona Lisa?", "What is the recipe for lasagne?",
    "How does photosynthesis work?", "When did the Roman Empire fall?", "What are the symptoms of flu?",
    "What is the plot of Hamlet?",
]
THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/qmsum")
    parser.add_argument("--split", default="train")
    parser.add_argument("--meetings", type=int, default=None, help="only the first N meetings (default: all)")
    parser.add_argument("--pipeline", default="default", help="a pipeline whose scorer has a dense encoder")
    args = parser.parse_args()
    pipeline = Pipeline.load(args.pipeline)
    on: list[tuple[float, str]] = []
    off: list[tuple[float, str]] = []
    seen: set[str] = set()
    general = 0  # questions about the whole document ("Summarize the meeting."): never checked
    for example in read_examples(args.data, args.split):
        meeting = example.document.fingerprint
        if meeting not in seen:
            if args.meetings is not None and len(seen) >= args.meetings:
                continue
            seen.add(meeting)
            segments = pipeline.segments(example.document)
            off += [(best_similarity(pipeline.scorer, q, segments), q) for q in OFF_TOPIC]
        if not names_a_topic(example.query):
            general += 1
            continue
        on.append((best_similarity(pipeline.scorer, example.query, pipeline.segments(example.document)), example.query))
    if any(score is None for score, _ in on):
        raise SystemExit(f"error: pipeline '{args.pipeline}' has no dense encoder to measure similarity with")
    on.sort()
    off.sort()
    print(f"{args.split}: {len(seen)} meetings, {len(on)} QMSum questions that name a topic (and {general} about "
          f"the whole meeting, never flagged), {len(off)} off-topic questions")
    print("lowest on-topic:", "; ".join(f"{s:.3f} {q}" for s, q in on[:3]))
    print("highest off-topic:", "; ".join(f"{s:.3f} {q}" for s, q in off[-3:]))
    print("| threshold | QMSum questions flagged | off-topic questions passed |")
    print("| ---: | ---: | ---: |")
    for t in THRESHOLDS:
        flagged = sum(s < t for s, _ in on)
        passed = sum(s >= t for s, _ in off)
        print(f"| {t:.2f} | {flagged} of {len(on)} ({flagged / len(on):.1%}) | {passed} of {len(off)} ({passed / len(off):.1%}) |")


if __name__ == "__main__":
    main()
