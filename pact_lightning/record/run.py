"""A run's record — what ``<run dir>/results.json`` holds — as typed data, read and written in one place (no torch).

Training writes one per run directory (the main run, each comparison run, a post-hoc model); the evaluate app writes
the same shape. The summary, the model card, the sweeper's objective, the report and the scripts read it.

Shape (JSON keys; every one may be absent in a record another writer made):

* the setting (:class:`~pact_lightning.setting.RunSetting` under results.json's keys: method, lam, num_safety_tokens,
  poison_ratio, num_samples, seed, model, task), ``run_dir``, ``model_weights`` (the weights fine-tuned or
  evaluated), ``safety_tokens`` (the file of S), ``alignment`` (the alignment stage's refusal rates, ``before`` and
  ``after``);
* ``checkpoint`` (evaluate: the adapter or weights evaluated), ``generations`` (evaluate ``generations=``: the saved
  answers judged again);
* ``train`` (global step and the last ``train/*`` metrics), ``devices``, ``final_dir`` (the saved adapter or
  weights), ``judge``;
* ``reference`` and ``final``: evaluation blocks (:class:`Evaluation`);
* ``diagnostics`` (the safety-token profile's plot), ``target_bias`` (:class:`TargetBias`: PACT's target against the
  reference before training), ``posthoc`` (what a post-hoc edit did);
* ``timings`` (wall seconds per stage), ``peak_memory_mib``, ``objective`` (the sweeper's number);
* ``compare``: per comparison model (``compare_with`` methods, post-hoc models) a :class:`CompareEntry`;
* ``paired``: per pair of evaluated models ``<a>-<b>``, per rate, a :class:`PairedDifference`.

A key this module does not know is kept in ``extra`` and written back, so a newer writer's field survives an older
reader's rewrite and nothing is dropped silently. A record read from a file writes back the keys it was read with, in
the same order (nulls included), and any field set since. A record built in code writes its fields that are not None,
and nulls only for its head (:data:`HEAD`: every training record names its setting, run directory, weights, safety
tokens and alignment, set or not).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

from pact_lightning.record.metrics import detail_block, paired_comparison, read_generations, tuning_of
from pact_lightning.setting import KEYS as SETTING_KEYS
from pact_lightning.setting import RunSetting
from pact_lightning.utils.io import write_text

FILE = "results.json"
SETTING = tuple(key for key, _ in SETTING_KEYS.values())  # the setting's results.json keys, in order


def _present(value: Any, key: str, always: Iterable[str], read: tuple[str, ...] | None) -> bool:
    """Whether ``key`` is written: a value, or a null that the record was read with (or, built in code, one that its
    type always writes)."""
    return value is not None or key in (always if read is None else read)


def _ordered(out: dict[str, Any], read: tuple[str, ...] | None) -> dict[str, Any]:
    """``out`` in the order its keys had when read (keys added since at the end, in their own order)."""
    if read is None:
        return out
    rank = {k: i for i, k in enumerate(read)}
    return {k: out[k] for k in sorted(out, key=lambda k: rank.get(k, len(rank)))}


class _Json:
    """A JSON object as a dataclass: its fields by name, unknown keys in ``extra``; see the module docstring for which
    None fields are written."""

    ALWAYS: ClassVar[tuple[str, ...]] = ()
    NESTED: ClassVar[dict[str, Any]] = {}  # field → the class of its value (from_dict / to_dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}: {data!r:.80}")
        names = {f.name for f in fields(cls) if f.init} - {"extra"}
        values = {k: (cls.NESTED[k].from_dict(v) if k in cls.NESTED and v is not None else v)
                  for k, v in data.items() if k in names}
        obj = cls(**values, extra={k: v for k, v in data.items() if k not in names})
        obj._read = tuple(data)
        return obj

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or not f.init or not _present(value, f.name, self.ALWAYS, self._read):
                continue
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return _ordered(out | self.extra, self._read)


@dataclass
class EvalSet(_Json):
    """One evaluated set of prompts: its kind (harmful | benign | task), its role (``measure``, or ``tune`` when it
    trained or tuned something and so stays out of the overall rates) and its number of prompts."""

    kind: str | None = None
    role: str | None = None
    prompts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _read: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    ALWAYS = ("kind", "role", "prompts")


@dataclass
class Evaluation(Mapping):
    """One evaluation block of results.json (``reference``, ``final``): the overall numbers (every rate of
    record.metrics.RATES in percent with its ``_ci_lo``/``_ci_hi``, the counters, ``task_majority_label`` and
    ``task_majority_rate``), the role of each set, and the per-set and per-category numbers (``<name>/<set>[/<cat>]``).

    It reads like the block itself (``block["harmful_score"]``, ``block.get("detail")``), so the vocabulary's
    functions take either."""

    values: dict[str, Any] = field(default_factory=dict)
    sets: dict[str, EvalSet] | None = None
    detail: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        if not isinstance(data, Mapping):
            raise TypeError(f"an evaluation block is a JSON object, got {type(data).__name__}: {data!r:.80}")
        sets = data.get("sets")
        return cls(values={k: v for k, v in data.items() if k not in ("sets", "detail")},
                   sets={k: EvalSet.from_dict(v) for k, v in sets.items()} if sets is not None else None,
                   detail=dict(data["detail"]) if data.get("detail") is not None else data.get("detail"))

    @classmethod
    def of(cls, block: Evaluation | Mapping[str, Any] | None) -> Evaluation | None:
        return block if isinstance(block, Evaluation) or block is None else cls.from_dict(block)

    def to_dict(self) -> dict[str, Any]:
        """The block as eval.scoring.block writes it: overall numbers, then ``sets``, then ``detail``."""
        out = dict(self.values)
        if self.sets is not None:
            out["sets"] = {k: v.to_dict() for k, v in self.sets.items()}
        if self.detail is not None:
            out["detail"] = dict(self.detail)
        return out

    # the block's keys: the overall numbers, then sets and detail where it has them
    def __getitem__(self, key: str) -> Any:
        if key == "sets" and self.sets is not None:
            return {k: v.to_dict() for k, v in self.sets.items()}
        if key == "detail" and self.detail is not None:
            return self.detail
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.values
        yield from (k for k in ("sets", "detail") if getattr(self, k) is not None)

    def __len__(self) -> int:
        return len(self.values) + (self.sets is not None) + (self.detail is not None)

    def rate(self, name: str) -> float | None:
        """A rate in percent (None when this evaluation has no such prompts)."""
        return self.values.get(name)

    def interval(self, name: str) -> tuple[float, float] | None:
        lo, hi = self.values.get(f"{name}_ci_lo"), self.values.get(f"{name}_ci_hi")
        return None if lo is None or hi is None else (lo, hi)

    @property
    def tuning(self) -> list[str]:
        """The sets that tuned something (kept out of the overall rates), in order."""
        return tuning_of(self)

    def of_set(self, name: str) -> dict[str, Any]:
        """The numbers of one set (its ``detail`` entries without the ``/<set>`` suffix)."""
        return detail_block(self, name)

    def numbers(self) -> dict[str, float]:
        """Every number of the block, overall and per set and category (``detail``'s keys), for loggers."""
        return {k: v for k, v in {**self.values, **(self.detail or {})}.items() if isinstance(v, (int, float))}


@dataclass
class Alignment(_Json):
    """The refusal rates of the aligned model's alignment.json: ``before`` the alignment stage (None when it skipped
    that evaluation) and ``after``."""

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _read: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    ALWAYS = ("before", "after")


@dataclass
class CompareEntry(_Json):
    """Another model of the run (a ``compare_with`` method's run, a post-hoc model): its method, run directory, saved
    model, last training metrics (comparison runs) and evaluation; its own results.json is in ``run_dir``."""

    method: str | None = None
    run_dir: str | None = None
    final_dir: str | None = None
    train: dict[str, Any] | None = None
    final: Evaluation | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _read: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    ALWAYS = ("method", "run_dir", "final_dir", "final")
    NESTED = {"final": Evaluation}

    @classmethod
    def of_run(cls, record: RunRecord, with_train: bool = True) -> CompareEntry:
        """The entry of another run's record (a post-hoc model's has no training of its own: ``with_train=False``)."""
        return cls(method=record.setting.method, run_dir=record.run_dir, final_dir=record.final_dir,
                   train=record.train if with_train else None, final=record.final)


@dataclass
class PairedDifference(_Json):
    """Model A minus model B on one rate, paired by prompt (record/stats.py ``paired_difference``): prompts ``n``,
    difference ``diff`` in points, discordant counts ``only_a``/``only_b``, exact McNemar ``p_value``, bootstrap 95%
    interval ``ci`` and whether the difference is ``beyond_noise``."""

    n: int | None = None
    diff: float | None = None
    only_a: int | None = None
    only_b: int | None = None
    p_value: float | None = None
    ci: list[float] | None = None
    beyond_noise: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _read: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    ALWAYS = ("n", "diff", "only_a", "only_b", "p_value", "ci", "beyond_noise")

    def __getitem__(self, key: str) -> Any:  # difference_text and the report read it as the dict it was
        return self.to_dict()[key]


# the head every training record writes, null or not: its setting, where it ran, the weights, S and the alignment
@dataclass
class TargetBias(_Json):
    """``target_bias``: PACT's target against the reference at θ = θ_ref, before the first step
    (pact_lightning/objectives/target_bias.py defines each number): KL(q ‖ p_ref) over all response positions and by
    position, the gate's mean c_t by position, T, and per token of S its id, text, w and logit shift (null, with
    ``zero_weight``, where w = 0 makes it −∞)."""

    kl_mean: float | None = None
    kl_by_position: list | None = None
    gate_by_position: list | None = None
    positions: list | None = None
    temperature: float | None = None
    tokens: list | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _read: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def top_shifts(self, n: int = 10) -> tuple[list[dict], list[dict], list[dict]]:
        """The ``n`` largest finite shifts up, the ``n`` largest down, and every token at −∞ (w = 0)."""
        finite = sorted((t for t in self.tokens or () if t.get("shift") is not None), key=lambda t: t["shift"])
        down = [t for t in finite[:n] if t["shift"] < 0]
        up = [t for t in reversed(finite[-n:]) if t["shift"] > 0]
        return up, down, [t for t in self.tokens or () if t.get("zero_weight")]

    def lines(self, n: int = 10) -> list[str]:
        """The summary's lines: the mean KL, and the ten largest logit shifts each way."""
        up, down, zero = self.top_shifts(n)
        fmt = lambda ts: ", ".join(f"{t['token']!r} {t['shift']:+.3f}" for t in ts) or "none"
        out = [f"target bias at θ_ref: KL(q ‖ p_ref|S) = {self.kl_mean:.4g} (mean over response positions, T="
               f"{self.temperature:g})",
               f"  logit shift T·log(q/p_ref), largest up: {fmt(up)}",
               f"  logit shift, largest down: {fmt(down)}"]
        if zero:
            out.append(f"  −∞ (w = 0, no target mass): {len(zero)} tokens, e.g. "
                       + ", ".join(repr(t["token"]) for t in zero[:n]))
        return out


HEAD = (*SETTING, "run_dir", "model_weights", "safety_tokens", "alignment")


@dataclass
class RunRecord:
    """One run's results.json as typed data (module docstring); ``RunRecord.read(run_dir)``, ``record.write(run_dir)``."""

    setting: RunSetting = field(default_factory=RunSetting)
    run_dir: str | None = None
    model_weights: str | None = None
    safety_tokens: str | None = None
    alignment: Alignment | None = None
    checkpoint: str | None = None
    generations: str | None = None
    train: dict[str, Any] | None = None
    devices: dict[str, Any] | None = None
    final_dir: str | None = None
    judge: str | None = None
    reference: Evaluation | None = None
    final: Evaluation | None = None
    diagnostics: str | None = None
    target_bias: TargetBias | None = None
    posthoc: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    peak_memory_mib: dict[str, float] | None = None
    objective: float | None = None
    compare: dict[str, CompareEntry] | None = None
    paired: dict[str, dict[str, PairedDifference]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # the keys of the JSON object it was read from, in order (None for a record built in code): written back as read
    _read: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    # ---- JSON
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """A results.json object (of any writer, past or present) as a record; unknown keys go to ``extra``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a run record is a JSON object, got {type(data).__name__}: {data!r:.80}")
        names = {f.name for f in fields(cls) if f.init} - {"setting", "extra"}
        known = {k: v for k, v in data.items() if k in names}
        for key, kind in (("reference", Evaluation), ("final", Evaluation), ("alignment", Alignment),
                          ("target_bias", TargetBias)):
            if known.get(key) is not None:
                known[key] = kind.from_dict(known[key])
        if known.get("compare") is not None:
            known["compare"] = {k: CompareEntry.from_dict(v) for k, v in known["compare"].items()}
        if known.get("paired") is not None:
            known["paired"] = {pair: {rate: PairedDifference.from_dict(d) for rate, d in rates.items()}
                               for pair, rates in known["paired"].items()}
        record = cls(setting=RunSetting.from_results(data), **known,
                     extra={k: v for k, v in data.items() if k not in names and k not in SETTING})
        record._read = tuple(data)
        return record

    @classmethod
    def of(cls, record: RunRecord | Mapping[str, Any]) -> RunRecord:
        """``record`` itself, or the record of a results.json object."""
        return record if isinstance(record, RunRecord) else cls.from_dict(record)

    def to_dict(self) -> dict[str, Any]:
        """The results.json object: the setting under its results.json keys, then every other field (module docstring
        for which None fields are written), then ``extra``."""
        out = {key: value for key, value in self.setting.as_results().items()
               if _present(value, key, HEAD, self._read)}
        for f in fields(self):
            if f.name in ("setting", "extra") or not f.init:
                continue
            value = getattr(self, f.name)
            if not _present(value, f.name, HEAD, self._read):
                continue
            if isinstance(value, (Evaluation, _Json)):
                value = value.to_dict()
            elif f.name == "compare" and value is not None:
                value = {k: v.to_dict() for k, v in value.items()}
            elif f.name == "paired" and value is not None:
                value = {pair: {rate: d.to_dict() for rate, d in rates.items()} for pair, rates in value.items()}
            out[f.name] = value
        return _ordered(out | self.extra, self._read)

    def to_json(self) -> str:
        """The text of results.json (2-space indent; a value JSON has no type for, e.g. a path, as its string)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """The record in ``path``: a run directory (its results.json) or the file itself."""
        path = Path(path)
        file = path / FILE if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{file} is not valid JSON ({err}); a run writes its results.json atomically, so this "
                             "file was not written by pact_lightning or was edited by hand") from err
        try:
            return cls.from_dict(data)
        except TypeError as err:
            raise ValueError(f"{file}: {err}") from err

    def write(self, run_dir: str | Path) -> Path:
        """``<run_dir>/results.json``, atomically (a kill leaves the old file or the new one, never half of one)."""
        return write_text(Path(run_dir) / FILE, self.to_json())

    # ---- reading
    @property
    def method(self) -> str:
        """The name of the run's own evaluated model: its method, ``final`` when it has none (an evaluate record)."""
        return self.setting.method or "final"

    def models(self) -> dict[str, Evaluation | None]:
        """Every evaluated model of the run by name: the reference, the run's own, and each comparison model."""
        return {"reference": self.reference, self.method: self.final,
                **{name: entry.final for name, entry in (self.compare or {}).items()}}

    @property
    def tuning(self) -> list[str]:
        """The tuning sets of the run's evaluation (its own, else its reference's)."""
        return tuning_of(self.final or self.reference)

    def with_setting(self, **changes: Any) -> RunRecord:
        """A copy with some setting fields changed (``method=`` for a post-hoc model's own record)."""
        return replace(self, setting=replace(self.setting, **changes))

    def paired_comparisons(self) -> dict[str, dict[str, PairedDifference]]:
        """Every pair of evaluated models of the run on the same prompts (``<a>-<b>``: the main method and each
        comparison model against the reference, and the main method against each comparison model), from their
        generations files; see record.metrics.paired_comparison."""
        if self.run_dir is None:
            return {}
        run_dir, method = Path(self.run_dir), self.method
        files = {"reference": run_dir / "generations_reference.jsonl", method: run_dir / "generations_final.jsonl"}
        files |= {m: Path(entry.run_dir) / "generations_final.jsonl" for m, entry in (self.compare or {}).items()
                  if entry.run_dir}
        rows = {name: read_generations(path) for name, path in files.items() if path.is_file()}
        others = [m for m in rows if m not in ("reference", method)]
        pairs = [(m, "reference") for m in (method, *others)] + [(method, m) for m in others]
        return {f"{a}-{b}": {rate: PairedDifference.from_dict(d)
                             for rate, d in paired_comparison(rows[a], rows[b], self.tuning).items()}
                for a, b in pairs if a in rows and b in rows}
