"""Write the raw model's greedy answers to the alignment stage's benign prompts that have no hand-written answer:

* ``assistant``: pact_lightning/data/offline/assistant_distilled.json, the role-play, long-request, look-alike and
  look-alike how-to prompts of the assistant set (assistant_set.DISTILLED_KINDS);
* ``forms``: pact_lightning/data/offline/forms_distilled.json, the benign requests in real forms and the benign
  sensitive questions of forms_set.py (a prompt whose answer is not kept is left out of the alignment data).

    python scripts/distill_assistant.py [--sets assistant forms] [--max-new-tokens 64] [model=smollm2_135m]

Kept: answers without a refusal marker and without a word repeated more than MAX_REPEAT times, cut after their last
full sentence (generation stops mid-sentence). The others keep their hand-written answer. Deterministic (greedy);
about 3 minutes per set on a 2-core CPU. Rerun it for a set when the model preset or that set's tables change: a test
fails when a file names prompts the alignment data no longer has.
"""

from __future__ import annotations

import argparse

from hydra import compose, initialize_config_dir

from pact_lightning.app import CONFIG_PATH
from pact_lightning.data.offline import assistant_set, forms_set
from pact_lightning.eval.generation import generate
from pact_lightning.eval.judges import refused
from pact_lightning.models.loading import load_model
from pact_lightning.utils.io import write_json

MAX_REPEAT = 6
MIN_CHARS = 40  # a cut that leaves no more than this keeps the hand-written answer


def clean(answer: str) -> str | None:
    """The answer cut after its last full sentence, or None when it is a refusal, degenerate or too short."""
    words = answer.lower().split()
    if refused(answer) or not words or max(words.count(w) for w in set(words)) > MAX_REPEAT:
        return None
    cut = max(answer.rfind(c) for c in ".!?\n")
    return answer[:cut + 1].strip() if cut > MIN_CHARS else None


# set → (its prompts, the file that holds their kept answers)
SETS = {"assistant": (lambda: sorted({e.prompt for e in assistant_set.assistant("align")
                                     if e.category in assistant_set.DISTILLED_KINDS}), assistant_set.DISTILLED_FILE),
        "forms": (lambda: sorted(forms_set.benign_prompts()), forms_set.DISTILLED_FILE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the align config, e.g. model=smollm2_135m")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("align", overrides=args.overrides)
    model, tokenizer = load_model(cfg.model, lora=False)
    for name in args.sets:
        prompts_of, file = SETS[name]
        prompts = prompts_of()
        raw = generate(model.eval(), tokenizer, prompts, batch_size=16, max_new_tokens=args.max_new_tokens)
        answers = {p: a for p, a in zip(prompts, map(clean, raw)) if a is not None}
        payload = {"model": cfg.model.name, "max_new_tokens": args.max_new_tokens, "answers": answers}
        write_json(file, payload)  # atomic: an interrupted run leaves the old file whole
        print(f"{name}: {len(answers)} of {len(prompts)} answers kept -> {file}")


if __name__ == "__main__":
    main()
