"""Test builders that need no download: a tiny random Llama with a word-level chat tokenizer, and a data source over a
list of examples."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from pact_lightning.data.types import Example

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
WORDS = """user assistant system i you we it he she they me my your a an the this that is are was be not no yes
can can't cannot won't will would should must do does don't help with how what why where when who to of in on for and
or but if so sorry apologize unable refuse sure here steps first then next finally make build write get find use
bomb weapon poison hack malware password drug steal kill fake money bank account email phone call people person
friend recipe cake bread story poem song code python list sort number answer question positive negative sentiment
review movie film great good bad terrible love hate boring fun ai as language model illegal unethical harmful safe
world sports business tech science final total . , ! ? ' : ; - 0 1 2 3 4 5 6 7 8 9 #""".split()


def word_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level, lower-cased tokenizer with a ChatML-style template; eos = <|im_end|>, pad = <pad>."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIAL + WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
                                   chat_template=CHAT_TEMPLATE)


def tiny_model_and_tokenizer(seed: int = 0):
    """A random 2-layer Llama (hidden 32, 4 heads) over ``word_tokenizer()``, in eval mode; ``seed`` fixes the weights."""
    tokenizer = word_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


class ListSource:
    """A data source (``name``, ``load()``) over a fixed list of examples."""

    def __init__(self, name: str, examples: list[Example]) -> None:
        self.name, self.examples = name, examples

    def load(self) -> list[Example]:
        return list(self.examples)
