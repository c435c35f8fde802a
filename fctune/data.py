"""Dataset preparation: load a source, convert rows, drop bad rows with reasons, dedupe, split, describe.

Sources: a hub dataset id (+ config), a local file or folder (json, jsonl, parquet; Hermes, xLAM,
OpenAI chat or canonical rows, detected per row), or ``offline`` (the seeded generator, emitted in the
requested upstream shape and read back through that shape's converter). A hub failure stops with an
error that names the offline options, unless ``fallback="offline"``: then the switch is a warning and a
field (``fallback``) in dataset_stats.json and in every later step's metadata.

Splits are stratified by (complexity, turn type, and the offline engine's row kind), seeded, and share no id and no
exact duplicate (normalized conversation text + tool names).
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fctune.backends import BACKEND_HELP, BACKENDS
from fctune.errors import UserError
from fctune.formats import RowError, detect_format, read_row
from fctune.formats.hermes import CONFIGS as HERMES_CONFIGS
from fctune.io import DataFileError, iter_jsonl, read_json
from fctune.offline.engine import KINDS as ENGINE_KINDS
from fctune.schema import Example

log = logging.getLogger(__name__)

PHASE_SIZES = {1: (100, 50, 50), 2: (1000, 200, 200)}
OFFLINE = "offline"
OFFLINE_CATALOG = "offline-catalog"


class SourceUnavailable(UserError, RuntimeError):
    pass


@dataclass
class LoadResult:
    examples: list[Example]
    source: dict  # what was used: kind, id/path, config, shape, fallback
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: list[dict] = field(default_factory=list)  # first few, with location and detail
    rows_read: int = 0


def convert_rows(rows, hermes_config: str = "func_calling_singleturn", where: str = "rows",
                 result: LoadResult | None = None) -> LoadResult:
    """Convert upstream rows (any supported shape, detected per row); bad rows are counted, never raised."""
    res = result or LoadResult([], {})
    for i, row in rows:
        res.rows_read += 1
        fmt = detect_format(row)
        try:
            if isinstance(row, dict) and row.get("metadata") is not None and not isinstance(row["metadata"], dict):
                raise RowError("bad_shape", f"field 'metadata' is a {type(row['metadata']).__name__}, not an object")
            if fmt == "unknown":
                keys = sorted(row)[:6] if isinstance(row, dict) else type(row).__name__
                raise RowError("bad_shape", f"unrecognized row shape (keys: {keys})")
            try:
                ex = read_row(fmt, row, i, hermes_config)
            except RowError:
                raise
            except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as e:
                # a field of an unexpected type deep in a row: that row is malformed, the others still count
                raise RowError("malformed", f"{type(e).__name__}: {e}") from None
        except RowError as e:
            res.skipped[e.reason] += 1
            if len(res.skipped_examples) < 20:
                res.skipped_examples.append({"where": f"{where}:{i}", "reason": e.reason, "detail": e.detail[:200]})
            continue
        if isinstance(row, dict) and row.get("source") and \
                ex.metadata.get("source", "").startswith(("hermes", "xlam", "openai")):
            ex.metadata["source"] = row["source"]
        res.examples.append(ex)
    return res


# -- loading ------------------------------------------------------------------------------------------------
def _iter_file(path: Path):
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".jsonl.gz"):
        yield from iter_jsonl(path)
    elif suffix == ".json":
        try:
            data = read_json(path)
        except DataFileError:
            yield from iter_jsonl(path)  # JSON lines saved as .json
            return
        if isinstance(data, list):
            rows = data
        else:
            rows = data.get("data") or data.get("rows") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise DataFileError(f"{path}: expected a JSON list of rows (or JSON lines)")
        yield from enumerate(rows, 1)
    elif suffix == ".parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises its own types for corrupt files
            raise DataFileError(f"{path}: not a readable parquet file ({str(e).splitlines()[0][:160]})") from None
        for i, row in enumerate(frame.to_dict(orient="records"), 1):
            yield i, {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()}
    else:
        raise DataFileError(f"{path}: unsupported file type (json, jsonl, jsonl.gz or parquet)")


def load_local(path: str, hermes_config: str) -> LoadResult:
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: no such file or folder")
    files = sorted(f for f in p.rglob("*") if f.is_file() and re.search(r"\.(jsonl?|parquet)(\.gz)?$", f.name)) \
        if p.is_dir() else [p]
    if not files:
        raise DataFileError(f"{p}: no json, jsonl or parquet files in this folder")
    res = LoadResult([], {"kind": "local", "path": str(p), "files": [str(f) for f in files]})
    for f in files:
        convert_rows(_iter_file(f), hermes_config, where=str(f), result=res)
    return res


def load_hub(dataset_id: str, config: str | None, split: str = "train", hermes_config: str | None = None) -> LoadResult:
    """A real ``datasets.load_dataset`` call (HF_TOKEN honoured)."""
    import datasets

    token = os.environ.get("HF_TOKEN") or None
    try:
        ds = datasets.load_dataset(dataset_id, config, split=split, token=token)
    except Exception as e:  # noqa: BLE001 - datasets raises many types for network/auth failures
        text = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        gated = "gated" in str(e).lower() or "401" in str(e) or "403" in str(e)
        hint = " (the dataset is gated: accept its terms on huggingface.co and set HF_TOKEN)" if gated else ""
        raise SourceUnavailable(
            f"could not load {dataset_id!r} config {config!r} from the hub{hint}: {text}. Offline options: "
            f"--source offline (the packaged generator), --source PATH (a local json/jsonl/parquet file or "
            f"folder), or --fallback offline to switch automatically.") from None
    hc = hermes_config or (config if config in HERMES_CONFIGS else "func_calling_singleturn")
    res = LoadResult([], {"kind": "hub", "id": dataset_id, "config": config, "split": split,
                          "fingerprint": getattr(ds, "_fingerprint", None)})
    return convert_rows(enumerate(ds, 1), hc, where=f"{dataset_id}[{config}]", result=res)


def parse_mix(entries: list[str] | None, where: str = "--mix") -> dict | None:
    """``["no_call=0.25", "parallel_same=0.2"]`` -> the engine's default mix with those shares changed."""
    from fctune.offline.engine import ENGINE_MIX, KINDS

    if not entries:
        return None
    mix = dict(ENGINE_MIX)
    for item in entries:
        kind, sep, share = str(item).partition("=")
        if not sep or kind.strip() not in (*KINDS, "catalog"):
            raise UserError(f"{where}: {item!r} is not KIND=SHARE with KIND one of {', '.join(KINDS)}, catalog")
        try:
            mix[kind.strip()] = float(share)
        except ValueError:
            raise UserError(f"{where}: {item!r}: the share {share!r} is not a number") from None
        if mix[kind.strip()] < 0:
            raise UserError(f"{where}: {item!r}: a share cannot be negative")
    if sum(mix.values()) <= 0:
        raise UserError(f"{where}: every share is 0")
    return mix


def load_offline(n: int, seed: int, shape: str = "hermes", mix: dict | None = None,
                 catalog_size: int | None = None) -> LoadResult:
    """The offline data engine (``fctune-offline-v2``): generated tools, every row kind, each call verified.
    Function names BFCL uses are never generated, and catalog rows offering one are dropped; the question 8-gram
    check is prepare's (:func:`fctune.decontam.decontaminate`), once over whatever the source gave."""
    from fctune.decontam import bfcl_reference
    from fctune.offline import emit_rows
    from fctune.offline.engine import (
        DEFAULT_CATALOG_SIZE,
        ENGINE_MIX,
        ENGINE_XLAM_MIX,
        SOURCE,
        EngineReport,
        generate_engine_examples,
    )

    mix = mix or (ENGINE_XLAM_MIX if shape == "xlam" else ENGINE_MIX)
    if shape == "xlam" and (mix.get("multi_turn") or mix.get("catalog")):
        raise UserError("xLAM rows are single-turn: the mix cannot have multi_turn or catalog rows in shape xlam")
    ref = bfcl_reference()
    report = EngineReport()
    examples = generate_engine_examples(n, seed=seed, mix=mix, catalog_size=catalog_size or DEFAULT_CATALOG_SIZE,
                                        exclude_names=ref.names if ref else frozenset(), report=report)
    rows = emit_rows(examples, shape, seed=seed)
    engine = report.to_dict()
    engine["mix"] = mix
    engine["bfcl_names_excluded_from"] = ref.describe() if ref else "not checked: bfcl-eval is not installed"
    res = LoadResult([], {"kind": "offline", "generator": SOURCE, "seed": seed, "rows": n, "shape": shape,
                          "engine": engine})
    return convert_rows(enumerate(rows, 1), "func_calling", where=f"offline[{shape}]", result=res)


def load_catalog(n: int, seed: int, shape: str = "hermes", mix: dict | None = None) -> LoadResult:
    """The ten-domain catalog (``fctune-offline-v1``: 31 tools, structured extraction, scripted multi-turn);
    the suites are drawn from it, so their results stay comparable across versions of the engine."""
    from fctune.offline import XLAM_MIX, emit_rows, generate_examples
    from fctune.offline.generator import SOURCE

    mix = mix or (XLAM_MIX if shape == "xlam" else None)
    examples = generate_examples(n, seed=seed, mix=mix)
    rows = emit_rows(examples, shape, seed=seed)
    res = LoadResult([], {"kind": "offline-catalog", "generator": SOURCE, "seed": seed, "rows": n, "shape": shape})
    return convert_rows(enumerate(rows, 1), "func_calling", where=f"offline-catalog[{shape}]", result=res)


def looks_like_path(source: str) -> bool:
    """A source meant as a local file or folder, not a hub id (``owner/name``): a missing one is then an error
    naming it, not 24 seconds of hub look-ups followed by a fallback."""
    return (source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1
            or bool(re.search(r"\.(jsonl?|parquet|csv|arrow)(\.gz)?$", source, re.IGNORECASE)))


def load_source(source: str, config: str | None, fallback: str, n_needed: int, seed: int,
                shape: str = "hermes", mix: dict | None = None, catalog_size: int | None = None) -> LoadResult:
    """Load ``source``; on a hub failure switch to the offline source only if ``fallback == 'offline'``."""
    offline_rows = max(2 * n_needed, 400)
    if source == OFFLINE:
        return load_offline(offline_rows, seed, shape, mix, catalog_size)
    if source == OFFLINE_CATALOG:
        return load_catalog(offline_rows, seed, shape)
    if Path(source).exists() or looks_like_path(source):
        return load_local(str(Path(source).expanduser()), config if config in HERMES_CONFIGS else "func_calling")
    try:
        return load_hub(source, config)
    except SourceUnavailable as e:
        if fallback != OFFLINE:
            raise
        log.warning("FALLBACK: %s -> using the offline source instead (--fallback offline)", e)
        res = load_offline(offline_rows, seed, shape, mix, catalog_size)
        res.source["fallback"] = {"requested": source, "config": config, "reason": str(e)}
        return res


# -- dedupe and split -----------------------------------------------------------------------------------
def _norm(text: str | None) -> str:
    return re.sub(r"\s+", " ", (text or "").strip().lower())


def dedupe_key(ex: Example) -> str:
    """Normalized conversation text + sorted tool names: exact duplicates share this key."""
    convo = " | ".join(f"{m.role}:{_norm(m.content)}" for m in ex.messages if m.role != "system")
    return convo + " || " + ",".join(sorted(ex.tool_names))


def dedupe(examples: list[Example]) -> tuple[list[Example], int]:
    seen_keys, seen_ids, out, dropped = set(), set(), [], 0
    for ex in examples:
        k = dedupe_key(ex)
        if k in seen_keys or ex.id in seen_ids:
            dropped += 1
            continue
        seen_keys.add(k)
        seen_ids.add(ex.id)
        out.append(ex)
    return out, dropped


def stratum(ex: Example) -> tuple[str, str, str]:
    # The engine's row kind too: each split then keeps the mix the engine was asked for (other sources have none)
    return ex.metadata.get("complexity", "?"), ex.metadata.get("turn_type", "?"), ex.metadata.get("row_kind", "")


def _allocate(total: int, weights: dict) -> dict:
    """Largest-remainder allocation of ``total`` over strata in proportion to ``weights``."""
    s = sum(weights.values())
    if s == 0 or total == 0:
        return {k: 0 for k in weights}
    raw = {k: total * w / s for k, w in weights.items()}
    alloc = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - alloc[k], reverse=True)[: total - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def stratified_split(examples: list[Example], sizes: tuple[int, int, int], seed: int):
    """Train/val/test with each split's strata in the pool's proportions; never more than the pool has."""
    rng = random.Random(seed)
    by = defaultdict(list)
    for ex in examples:
        by[stratum(ex)].append(ex)
    for k in sorted(by):
        rng.shuffle(by[k])
    total = sum(sizes)
    shortfall = max(0, total - len(examples))
    if shortfall:
        scale = len(examples) / total
        sizes = tuple(int(s * scale) for s in sizes)
    splits = []
    remaining = {k: list(v) for k, v in sorted(by.items())}
    for size in sizes:
        alloc = _allocate(size, {k: len(v) for k, v in remaining.items()})
        part = []
        for k, n in alloc.items():
            part.extend(remaining[k][:n])
            remaining[k] = remaining[k][n:]
        rng.shuffle(part)
        splits.append(part)
    return splits, shortfall


def check_disjoint(splits: dict[str, list[Example]]) -> None:
    seen_id, seen_key = {}, {}
    for name, exs in splits.items():
        for ex in exs:
            for table, key in ((seen_id, ex.id), (seen_key, dedupe_key(ex))):
                if key in table and table[key] != name:
                    raise AssertionError(f"{ex.id} appears in both {table[key]} and {name}")
                table[key] = name


# -- statistics ---------------------------------------------------------------------------------------------
def _percentiles(values: list[int]) -> dict:
    if not values:
        return {}
    v = sorted(values)

    def pct(p):
        return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]

    return {"min": v[0], "p50": pct(50), "p90": pct(90), "p95": pct(95), "p99": pct(99), "max": v[-1],
            "mean": round(sum(v) / len(v), 1)}


def split_stats(examples: list[Example], renderer=None) -> dict:
    stats: dict = {"count": len(examples)}
    for key in ("complexity", "domain", "turn_type", "multi_turn_kind", "row_kind"):
        stats[key] = dict(sorted(Counter(str(e.metadata.get(key)) for e in examples).items()))
    stats["expected_kind"] = dict(Counter(e.expected.kind for e in examples))
    stats["complexity_x_domain_x_turn_type"] = dict(sorted(Counter(
        f"{e.metadata.get('complexity')}|{e.metadata.get('domain')}|{e.metadata.get('turn_type')}"
        for e in examples).items()))
    if renderer is not None:
        lengths, targets = [], []
        for e in examples:
            f = renderer.training_features(e)
            lengths.append(len(f["input_ids"]))
            targets.append(sum(f["assistant_masks"]))
        stats["tokens_per_example"] = _percentiles(lengths)
        stats["assistant_tokens_per_example"] = _percentiles(targets)
        stats["tokens_total"] = sum(lengths)
    return stats


# -- the prepare step ---------------------------------------------------------------------------------------
@dataclass
class PrepareConfig:
    """Prepare function-calling data: load, convert, clean, dedupe and split into train/val/test JSONL."""

    source: str = field(default=OFFLINE, metadata={
        "help": "'offline' (packaged generator), a hub dataset id (e.g. NousResearch/hermes-function-calling-v1) "
                "or a local json/jsonl/parquet file or folder"})
    dataset_config: str | None = field(default="func_calling_singleturn", metadata={
        "help": f"hub config / Hermes config name ({', '.join(HERMES_CONFIGS)})"})
    shape: str = field(default="hermes", metadata={
        "help": "upstream shape the offline source is emitted in (and read back through)",
        "choices": ["hermes", "xlam", "openai"]})
    fallback: str = field(default="none", metadata={
        "help": "'offline': when the hub cannot be reached, use the offline source (a recorded warning); "
                "'none': stop with an error", "choices": ["none", "offline"]})
    phase: int | None = field(default=None, metadata={"help": "size preset: 1 = 100/50/50, 2 = 1000/200/200",
                                                       "choices": [1, 2, None]})
    train_size: int = field(default=100, metadata={"min": 1, "help": "train examples (overridden by --phase)"})
    val_size: int = field(default=50, metadata={"min": 1, "help": "validation examples"})
    test_size: int = field(default=50, metadata={"min": 1, "help": "test examples"})
    seed: int = field(default=42, metadata={"help": "seed for the offline source and the split"})
    output_dir: str = field(default="paper_approach/datasets", metadata={"help": "where the splits go"})
    prefix: str = field(default="hermes", metadata={"help": "file prefix: <prefix>_{train,val,test}.jsonl"})
    tokenizer: str = field(default="smollm2", metadata={
        "help": "model whose tokenizer and chat template measure token lengths ('none' to skip)"})
    mix: list[str] = field(default_factory=list, metadata={
        "help": "offline engine: row-kind shares to change, KIND=SHARE (" + ", ".join((*ENGINE_KINDS, "catalog"))
                + "); the rest keep their defaults (fctune.offline.engine.ENGINE_MIX; implied is 0 unless asked)"})
    catalog_size: int = field(default=3000, metadata={"min": 10, "help": "offline engine: generated functions"})
    mask_names: float = field(default=0.0, metadata={
        "min": 0, "max": 1, "help": "share of train rows whose function and parameter names are replaced by random "
                                    "identifiers (Hammer's masking; validation and test rows are never masked)"})
    query_writer: str = field(default="none", metadata={
        "help": "offline engine: reword the requests of single-turn call rows with a model, --query-writer-model, "
                "through a backend (" + BACKEND_HELP + "; local runs it in this process, batched: on a GPU no server "
                "is needed); a rewrite is kept only if every value is still in it", "choices": ["none", *BACKENDS]})
    query_writer_model: str | None = field(default=None, metadata={
        "help": "the query writer's model (local, llamacpp: hub id, folder, GGUF or offline name, default "
                "qwen2.5-coder-0.5b-instruct; openai: model name; azure: deployment)"})
    query_writer_batch_size: int = field(default=32, metadata={
        "min": 1, "help": "local query writer: requests per generate() call"})
    query_writer_base_url: str | None = field(default=None, metadata={"help": "openai: endpoint (default from .env)"})
    query_writer_share: float = field(default=1.0, metadata={
        "min": 0, "max": 1, "help": "share of the eligible rows sent to the query writer"})
    decontaminate: str = field(default="fail", metadata={
        "help": "BFCL decontamination: fail = stop on a BFCL function name (and drop rows sharing an 8-word sequence "
                "with a BFCL question), drop = drop both, report = keep all, off = no check",
        "choices": ["fail", "drop", "report", "off"]})


def _rewrite(examples: list[Example], cfg: PrepareConfig) -> tuple[list[Example], dict]:
    """Reword engine requests through an fctune backend (retries, errors recorded); see fctune.offline.query_writer."""
    from fctune.backends import make_backend
    from fctune.evaluate import EvalConfig
    from fctune.models import OFFLINE_LLM
    from fctune.offline.query_writer import rewrite_queries

    if not any(e.metadata.get("row_kind") for e in examples):
        raise UserError(f"--query-writer rewords the offline engine's rows; --source {cfg.source} has none")
    model = cfg.query_writer_model or (OFFLINE_LLM if BACKENDS[cfg.query_writer].local_model else None)
    ecfg = EvalConfig(backend=cfg.query_writer, model=model, base_url=cfg.query_writer_base_url, max_new_tokens=160,
                      results_dir=cfg.output_dir, request_timeout_s=300, batch_size=cfg.query_writer_batch_size)
    backend = make_backend(ecfg)
    try:
        out, counts = rewrite_queries(examples, backend, cfg.query_writer_share, cfg.seed)
        identity = backend.identity()
    finally:
        backend.close()
    return out, {"backend": cfg.query_writer, "model": model, "share": cfg.query_writer_share,
                 "writer": {k: v for k, v in identity.items() if k in ("model", "served_by", "model_description",
                                                                        "endpoint_host", "device", "dtype")}, **counts}


def _first_skip(res: LoadResult) -> str:
    s = res.skipped_examples[0] if res.skipped_examples else None
    return f"; first skipped: {s['where']}: {s['reason']}: {s['detail']}" if s else ""


def prepare(cfg: PrepareConfig) -> dict:
    """Run the prepare step; returns the stats written to dataset_stats.json."""
    from fctune.config import run_metadata
    from fctune.decontam import decontaminate
    from fctune.io import write_json_atomic
    from fctune.masking import mask_share
    from fctune.schema import write_examples

    sizes = PHASE_SIZES[cfg.phase] if cfg.phase else (cfg.train_size, cfg.val_size, cfg.test_size)
    mix = parse_mix(cfg.mix)
    if mix and cfg.source != OFFLINE and cfg.fallback != OFFLINE:
        raise UserError(f"--mix shapes the offline engine's rows; --source {cfg.source} does not use it")
    res = load_source(cfg.source, cfg.dataset_config, cfg.fallback, sum(sizes), cfg.seed, cfg.shape, mix,
                      cfg.catalog_size)
    rewrites = None
    if cfg.query_writer != "none":
        res.examples, rewrites = _rewrite(res.examples, cfg)
    pool, dupes = dedupe(res.examples)
    if dupes:
        res.skipped["duplicate"] += dupes
    pool, contamination = decontaminate(pool, cfg.decontaminate, where=str(cfg.source))
    if contamination.get("rows_dropped"):
        res.skipped["bfcl_overlap"] += contamination["rows_dropped"]
    if not pool:
        raise DataFileError(f"{cfg.source}: no usable rows ({dict(res.skipped)} skipped){_first_skip(res)}")
    (train, val, test), shortfall = stratified_split(pool, sizes, cfg.seed)
    empty = [name for name, exs in (("train", train), ("val", val), ("test", test)) if not exs]
    if empty:  # a split without rows would train on nothing or score nothing, and every later step would still run
        raise DataFileError(f"{cfg.source}: only {len(pool)} usable rows, too few for train/val/test "
                            f"({len(train)}/{len(val)}/{len(test)}; {', '.join(empty)} empty; "
                            f"{dict(res.skipped)} skipped){_first_skip(res)}")
    check_disjoint({"train": train, "val": val, "test": test})
    if shortfall:
        log.warning("the source has %d usable rows, fewer than the %d asked for: splits were scaled down",
                    len(pool), sum(sizes))
    train, n_masked = mask_share(train, cfg.mask_names, cfg.seed)
    out = Path(cfg.output_dir)
    files = {name: out / f"{cfg.prefix}_{name}.jsonl" for name in ("train", "val", "test")}
    for name, exs in (("train", train), ("val", val), ("test", test)):
        write_examples(files[name], exs)
    renderer = None
    tokenizer_info = None
    if cfg.tokenizer and cfg.tokenizer != "none":
        from fctune.models import load_tokenizer
        from fctune.render import PromptRenderer

        renderer = PromptRenderer(load_tokenizer(cfg.tokenizer))
        tokenizer_info = {"model": cfg.tokenizer, **renderer.describe()}
    stats = {
        "source": res.source,
        "fallback": res.source.get("fallback"),
        "requested_sizes": dict(zip(("train", "val", "test"), sizes, strict=True)),
        "rows_read": res.rows_read,
        "usable_rows": len(pool),
        "skipped": dict(res.skipped),
        "skipped_examples": res.skipped_examples,
        "shortfall": shortfall,
        "decontamination": contamination,
        "masking": {"share": cfg.mask_names, "train_rows_masked": n_masked},
        "query_writer": rewrites,
        "tokenizer": tokenizer_info,
        "splits": {name: split_stats(exs, renderer) for name, exs in (("train", train), ("val", val), ("test", test))},
        "files": {k: str(v) for k, v in files.items()},
    }
    stats["metadata"] = run_metadata(cfg, data_files=list(files.values()))
    write_json_atomic(out / "dataset_stats.json", stats)
    return stats


def main(argv=None) -> int:
    """The command line (``fctune prepare``, and the documented script)."""
    from fctune.cli import run_script

    return run_script(PrepareConfig, prepare, argv, summary=lambda s: (
        f"wrote {s['files']['train']} ({s['splits']['train']['count']}), val {s['splits']['val']['count']}, "
        f"test {s['splits']['test']['count']}; skipped {s['skipped'] or 'none'}; source {s['source']['kind']}"
        + (" (FALLBACK to offline)" if s['fallback'] else "")))


if __name__ == "__main__":
    raise SystemExit(main())
