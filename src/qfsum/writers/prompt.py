"""The prompt of a model writer, built in one place for serving (`writers.generative`) and for
training the causal writer (`training.writer`): a model is trained on the prompt it is served with.

A causal LM reads the system prompt and the user's turn through its tokenizer's chat template, or a
plain-text prompt where the tokenizer has none; a seq2seq model reads `SEQ2SEQ_TEMPLATE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import QfsumError

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

SYSTEM_PROMPT = (
    "You answer questions about a long document using only the excerpts you are given. "
    "Be concise and faithful: no facts that are not in the excerpts."
)
USER_TEMPLATE = "Excerpts from the document:\n{evidence}\n\nQuestion: {query}\nAnswer in a few sentences."
SEQ2SEQ_TEMPLATE = "question: {query} context: {evidence}"


def prompt_ids(tokenizer: PreTrainedTokenizerBase, query: str, evidence: str, seq2seq: bool = False) -> list[int]:
    """The prompt's token ids for `query` and the `evidence` text (excerpts, one per line)."""
    if seq2seq:
        return tokenizer(SEQ2SEQ_TEMPLATE.format(query=query, evidence=evidence))["input_ids"]
    user = USER_TEMPLATE.format(query=query, evidence=evidence)
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return tokenizer(f"{SYSTEM_PROMPT}\n\n{user}\nAnswer:")["input_ids"]


def evidence_in_prompt(text: str) -> str:
    """The evidence inside the decoded text of a prompt `prompt_ids` built: what grounded decoding lets the
    writer draw on. The question is left out: a number or name the user wrote is no evidence for it
    ("...during COVID-19?" asked of excerpts that never say it). A text no template of ours built (tests
    often pass bare evidence) is returned whole.

    The question follows the evidence, so the last question marker ends it; a question holding that
    marker itself ("\n\nQuestion: ") would leave its start inside the evidence.
    """
    head, rest = USER_TEMPLATE.split("{evidence}")
    tail = rest.split("{query}")[0]
    start, end = text.find(head), text.rfind(tail)
    if 0 <= start and start + len(head) <= end:
        return text[start + len(head): end]
    question, rest = SEQ2SEQ_TEMPLATE.split("{query}")
    context = rest.split("{evidence}")[0]
    if text.startswith(question) and context in text:
        return text.split(context, 1)[1]
    return text


def fitted_prompt_ids(tokenizer: PreTrainedTokenizerBase, query: str, passage: str, max_tokens: int = 1024) -> list[int]:
    """A causal LM's prompt for (query, passage), the passage cut at its end so the prompt fits `max_tokens`."""
    ids = prompt_ids(tokenizer, query, passage)
    if len(ids) <= max_tokens:
        return ids
    offsets = tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    keep = max(len(offsets) - (len(ids) - max_tokens), 0)
    while True:  # re-encoding at the cut may merge tokens differently: step back until it fits
        ids = prompt_ids(tokenizer, query, passage[: offsets[keep - 1][1]] if keep else "")
        if len(ids) <= max_tokens or keep == 0:
            if len(ids) > max_tokens:
                raise QfsumError(f"the query alone is longer than {max_tokens} prompt tokens")
            return ids
        keep = max(keep - max(len(ids) - max_tokens, 1), 0)
