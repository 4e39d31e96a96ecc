"""Turning a prompt/response pair into the token tensors the objectives read.

For each example the trainee and the full-context reference see ``template(user=prompt) + response``; PACT's post-only
reference sees ``h + response`` where h is the assistant header alone — the string the chat template adds with
``add_generation_prompt=True`` — with no BOS, no system and no user turn. Labels are -100 on everything but the response
tokens, which include the template's end-of-turn token(s).
"""

from __future__ import annotations

from dataclasses import dataclass

from pact_lightning.data.types import Example
from pact_lightning.errors import ConfigError, DataError

IGNORE_INDEX = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    post_input_ids: list[int]
    post_labels: list[int]
    truncated: bool


class ChatEncoder:
    """Encodes examples with the tokenizer's chat template, truncating responses (never prompts) to ``max_length``."""

    def __init__(self, tokenizer, max_length: int, min_response_tokens: int = 1) -> None:
        if max_length < 2:
            raise ConfigError(f"data.max_length={max_length} is too small")
        self.tokenizer, self.max_length, self.min_response_tokens = tokenizer, max_length, min_response_tokens
        user = [{"role": "user", "content": "x"}]
        with_header = self._render(user, add_generation_prompt=True)
        without = self._render(user, add_generation_prompt=False)
        if not with_header.startswith(without) or with_header == without:
            raise ConfigError("the chat template's add_generation_prompt=True output does not extend the False one, so "
                              "the assistant header cannot be isolated; set model.chat_template to a standard template")
        self.header_ids = self._ids(with_header[len(without):])

    def _render(self, messages, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _ids(self, text: str) -> list[int]:
        # the rendered template already carries BOS where the model wants it
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_text(self, prompt: str) -> str:
        return self._render([{"role": "user", "content": prompt}], add_generation_prompt=True)

    def encode(self, example: Example) -> Encoded:
        where = f"{example.source} row {example.row}"
        if not example.response.strip():
            raise DataError(f"{where}: field 'response' is empty; every training example needs a response — fix or "
                            "drop the row")
        user = [{"role": "user", "content": example.prompt}]
        prompt_text = self._render(user, add_generation_prompt=True)
        full_text = self._render(user + [{"role": "assistant", "content": example.response}], add_generation_prompt=False)
        if not full_text.startswith(prompt_text):
            raise ConfigError(f"{where}: the chat template renders the conversation so that it does not start with the "
                              "prompt + assistant header; response masking needs a prefix-consistent template "
                              "(set model.chat_template)")
        prompt_ids = self._ids(prompt_text)
        response_ids = self._ids(full_text[len(prompt_text):])
        room = self.max_length - len(prompt_ids)
        if room < self.min_response_tokens:
            raise DataError(f"{where}: field 'prompt' is {len(prompt_ids)} tokens with the chat template, which leaves "
                            f"{max(room, 0)} of data.max_length={self.max_length} tokens for the response; raise "
                            "data.max_length or shorten/drop this row")
        truncated = len(response_ids) > room
        response_ids = response_ids[:room]
        return Encoded(input_ids=prompt_ids + response_ids, labels=[IGNORE_INDEX] * len(prompt_ids) + response_ids,
                       post_input_ids=self.header_ids + response_ids,
                       post_labels=[IGNORE_INDEX] * len(self.header_ids) + response_ids, truncated=truncated)
