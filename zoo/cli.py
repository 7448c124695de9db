"""`zoo` command line: parse arguments, call the Python API, print. One `except ZooError` maps exit codes."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import api, families
from ._version import __version__
from .errors import Aborted, InputError, VerifyFailed, ZooError
from .judging import drift_table
from .registry import Entry


class UsageError(InputError):
    """The command line itself is malformed (argparse's complaint)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error is a typed InputError, so `--json` gets a JSON error object too."""
        raise UsageError(f"{self.prog}: {message}")


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "json", False) and sys.stderr.isatty()


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)


def _state_text(state: dict[str, bool], empty: str = "-") -> str:
    return ",".join(k for k, v in state.items() if v) or empty


# --- verbs --------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "family": e.family,
            "task": e.task,
            "size": e.size,
            "source": e.source.repo or e.source.url,
            "state": api.state(e),
        }
        for e in api.list_models(args.family)
    ]
    lines = [f"{'id':46} {'family':7} {'task':17} {'size':7} state"]
    lines += [f"{r['id']:46} {r['family']:7} {r['task']:17} {r['size']:7} {_state_text(r['state'])}" for r in rows]
    _emit(args, rows, "\n".join(lines))
    return 0


def _info_text(entry: Entry, state: dict[str, bool]) -> str:
    a = entry.attributes
    lines = [
        f"{entry.id}  ({entry.family}, {entry.task}, size {entry.size})",
        f"  source:     {entry.source.url or entry.source.repo}"
        + (f" @ {entry.source.revision}" if entry.source.revision else ""),
        f"  size/hash:  {entry.source.size or 'unknown'} bytes, "
        f"sha256 {entry.source.sha256 or 'null (pinned on first pull)'}",
        f"  converter:  {entry.converter or 'none (already safetensors)'}",
        f"  license:    {entry.license}",
        f"  paper:      {entry.paper.title}" + (f" (arXiv {entry.paper.arxiv})" if entry.paper.arxiv else ""),
        "  attributes: " + ", ".join(f"{k}={v}" for k, v in vars(a).items() if v is not None),
        "  state:      " + _state_text(state, "not pulled").replace(",", ", "),
    ]
    if entry.notes:
        lines.append(f"  notes:      {entry.notes}")
    drift = [r for r in drift_table(entry) if r.paper is not None and r.converted is not None]
    if drift:
        lines += [
            "",
            "  drift: paper numbers vs the converted HF checkpoint (authors' deprecation note)",
            f"  {'benchmark':22} {'metric':7} {'paper':>7} {'converted':>9} {'delta':>7}",
        ]
        lines += [
            f"  {r.benchmark:22} {r.metric:7} {r.paper:7.1f} {r.converted:9.1f} {r.delta:+7.1f}"
            for r in drift
            if r.delta is not None
        ]
    shown = {(r.benchmark, r.metric) for r in drift}
    others = [m for m in entry.metrics if (m.benchmark, m.metric) not in shown]
    if others:
        lines += ["", "  metrics:"]
        lines += [f"  {m.benchmark:40} {m.metric:18} {m.value:>8g}  [{m.set}] {m.provenance}" for m in others]
    for g in entry.golden:
        lines += ["", f"  golden: {g.name}: {list(g.values)} (tolerance {g.tolerance:g}; {g.provenance})"]
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    data = api.info(args.model)
    _emit(args, data, _info_text(api.get(args.model), data["state"]))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    if args.all == bool(args.models):
        raise InputError("give model ids or --all (not both)")
    ids = [e.id for e in api.list_models()] if args.all else [api.get(m).id for m in args.models]
    results = []
    for model_id in ids:
        was_cached = api.state(model_id)["pulled"] and not args.force
        path = api.pull(model_id, force=args.force, repin=args.repin, progress=_progress(args))
        results.append({"id": model_id, "path": str(path), "status": "cached" if was_cached else "downloaded"})
        if not args.json:
            print(f"{model_id}: {results[-1]['status']} -> {path}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    if args.source is not None:
        if args.model or not args.format or not args.out:
            raise InputError("convert --from PATH needs --format and --out, and no model id")
        reset = {"yes": True, "no": False}.get(args.reset)
        options = {
            k: v
            for k, v in (("config", args.config), ("vision", args.vision), ("reset_position_index_per_cell", reset))
            if v is not None
        }
        path = api.convert(
            Path(args.source),
            args.format,
            Path(args.out),
            force=args.force,
            progress=_progress(args),
            accept_mismatch=args.accept_mismatch,
            **options,
        )
    else:
        if not args.model or args.format or args.config or args.vision or args.reset:
            raise InputError("convert takes a model id, or --from PATH --format FORMAT --out DIR")
        path = api.convert(
            args.model,
            out=Path(args.out) if args.out else None,
            force=args.force,
            progress=_progress(args),
            accept_mismatch=args.accept_mismatch,
        )
    data = api.read_manifest(path)
    _emit(
        args,
        {"path": str(path), "format": data["format"], "notes": data["notes"], "checks": data["checks_at_conversion"]},
        "\n".join(
            [f"converted -> {path}"]
            + [f"  note: {n}" for n in data["notes"]]
            + [f"  {c['name']}: {c['verdict']} ({c['value']})" for c in data["checks_at_conversion"]]
        ),
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    report = api.verify(args.target, golden=args.golden)
    lines = [f"verify {report.target}"]
    for c in report.checks:
        lines.append(
            f"  {c.name:10} {c.verdict:4}  value={c.value}  tolerance={c.tolerance}"
            + (f"  {c.detail}" if c.detail else "")
        )
    lines.append("OK" if report.ok else "FAILED")
    _emit(args, report.to_dict(), "\n".join(lines))
    if not report.ok:
        raise VerifyFailed("verification failed", report)
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    path = api.path(args.model)
    _emit(args, {"id": api.get(args.model).id, "path": str(path)}, str(path))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    result = api.push(
        args.target, args.repo, revision=args.revision, private=args.private, message=args.message, force=args.force
    )
    state = "pushed" if result.changed else "unchanged (nothing new to upload)"
    unverified = "" if result.verified else "  (UNVERIFIED: --force)"
    _emit(args, result.to_dict(), f"{state}: {result.url}\n  commit {result.commit}{unverified}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmarks import render

    result = api.bench(
        args.model,
        args.data,
        judge_as=args.judge_as,
        split=args.split,
        work=args.work,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        device=args.device,
        images=args.images,
        backend=args.backend,
        tables_tsv=args.tables_tsv,
        progress=_progress(args),
        engine=args.engine,
        ray_address=args.ray_address,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
    )
    _emit(args, result.to_dict(), render(result))
    if not result.ok:
        raise VerifyFailed("benchmark numbers outside the registry's tolerance", result)
    return 0


def _size(n: int) -> str:
    """Bytes in decimal units (kB = 1000 B)."""
    if abs(n) < 1000:
        return f"{n} B"
    value, units = n / 1000, ["kB", "MB", "GB", "TB"]
    while abs(value) >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.1f} {units[0]}"


def cmd_cache_ls(args: argparse.Namespace) -> int:
    entries = api.cache_list(args.models)
    lines = []
    for e in entries:
        state = _state_text(e.state) if e.registered else "not in the registry"
        lines.append(f"{e.id:46} {_size(e.size_bytes):>10}  {state:26} {e.to_dict()['last_modified'] or '-'}")
        for p in e.parts:
            linked = f" (+{_size(p.linked_bytes)} hard-linked)" if p.linked_bytes else ""
            where = str(p.paths[0]) + (f" (+{len(p.paths) - 1} more)" if len(p.paths) > 1 else "")
            lines.append(f"  {p.part:10} {_size(p.size_bytes):>10}{linked}  {where}")
    total = sum(e.size_bytes for e in entries)
    lines.append(f"total {_size(total)} ({total} bytes) in {len(entries)} model(s)")
    _emit(args, [e.to_dict() for e in entries], "\n".join(lines))
    return 0


def _confirm(args: argparse.Namespace, question: str) -> None:
    """Ask on a terminal unless --yes; without a terminal, --yes is required."""
    if args.yes or args.dry_run:
        return
    if not sys.stdin.isatty():
        raise InputError(f"zoo cache {args.cache_verb} deletes files: pass --yes (stdin is not a terminal to ask on)")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Aborted("nothing was removed")


def _removals_text(removals: Sequence[Any], dry_run: bool) -> str:
    verb = "would free" if dry_run else "freed"
    lines = [
        f"{r.id}: {r.part:9} {_size(r.size_bytes):>10}  {r.path}" + (f"  [{r.note}]" if r.note else "")
        for r in removals
    ]
    total = sum(r.size_bytes for r in removals)
    lines.append(f"{verb} {_size(total)} ({total} bytes)" + (" (dry run: nothing was deleted)" if dry_run else ""))
    return "\n".join(lines)


def _removals_json(removals: Sequence[Any], dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "removed": [r.to_dict() for r in removals],
        "freed_bytes": sum(r.size_bytes for r in removals),
    }


def cmd_cache_rm(args: argparse.Namespace) -> int:
    parts = [p for p in ("archive", "raw", "converted") if getattr(args, p)]
    plan = api.cache_remove(args.models, parts, dry_run=True)
    if not plan:
        _emit(args, _removals_json([], args.dry_run), "nothing to remove")
        return 0
    if not args.dry_run and not args.yes and not args.json:
        print(_removals_text(plan, True).rsplit("\n", 1)[0], file=sys.stderr)
    _confirm(args, f"remove these {len(plan)} item(s), {_size(sum(r.size_bytes for r in plan))}?")
    removals = plan if args.dry_run else api.cache_remove(args.models, parts)
    _emit(args, _removals_json(removals, args.dry_run), _removals_text(removals, args.dry_run))
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    plan = api.cache_prune(archives=args.archives, dry_run=True)
    if not plan:
        _emit(args, _removals_json([], args.dry_run), "nothing to prune")
        return 0
    if not args.dry_run and not args.yes and not args.json:
        print(_removals_text(plan, True).rsplit("\n", 1)[0], file=sys.stderr)
    _confirm(args, f"remove these {len(plan)} item(s), {_size(sum(r.size_bytes for r in plan))}?")
    removals = plan if args.dry_run else api.cache_prune(archives=args.archives)
    _emit(args, _removals_json(removals, args.dry_run), _removals_text(removals, args.dry_run))
    return 0


def cmd_cache_verify(args: argparse.Namespace) -> int:
    checks = api.cache_verify(args.models)
    lines = []
    for c in checks:
        counted = ", ".join(f"{part} {n}" for part, n in c.checked.items()) or "nothing"
        lines.append(f"{c.id}: {'OK' if c.ok else f'{len(c.problems)} problem(s)'} ({counted} file(s) checked)")
        lines += [f"  {p}" for p in c.problems]
    bad = [c for c in checks if not c.ok]
    problems = sum(len(c.problems) for c in bad)
    lines.append(f"FAILED: {problems} problem(s) in {len(bad)} model(s)" if bad else f"OK: {len(checks)} model(s)")
    _emit(args, [c.to_dict() for c in checks], "\n".join(lines))
    if bad:
        raise VerifyFailed(f"cache verify: {problems} problem(s)", checks)
    return 0


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zoo", description="Registry, converter and verifier for retrieval checkpoints.")
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="table of entries with cache state")
    p.add_argument("--family", choices=families.names())
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="everything about one entry, incl. metrics and drift table")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("pull", help="download + integrity check into the cache")
    p.add_argument("models", nargs="*")
    p.add_argument("--all", action="store_true")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument("--repin", action="store_true", help="accept a changed upstream file and re-pin its hash")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("convert", help="convert a registry model, or a local artifact with --from")
    p.add_argument("model", nargs="?")
    p.add_argument("--from", dest="source", help="local artifact: zip, unzipped dir, checkpoint prefix or .ckpt")
    p.add_argument("--format", choices=families.format_names())
    p.add_argument("--out", help="output directory")
    p.add_argument("--config", help="flmr-legacy: dir with config.json and the tokenizer folders")
    p.add_argument(
        "--vision",
        help="flmr-legacy: CLIP vision model dir, or the FLMR hub repo (FLMR legacy checkpoints have no vision tower)",
    )
    p.add_argument(
        "--reset-position-index-per-cell",
        dest="reset",
        choices=["yes", "no"],
        help="tapas: per-cell position reset, when the checkpoint has no .meta graph to tell",
    )
    p.add_argument("--force", action="store_true", help="replace an existing converted model")
    p.add_argument(
        "--accept-mismatch",
        action="store_true",
        help="keep a conversion that fails its parity checks (recorded in the manifest and card)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("verify", help="run the checks; exit 0 only if all pass")
    p.add_argument("target", metavar="MODEL|DIR")
    p.add_argument("--golden", help="golden fixture directory (inputs + outputs of the original code)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("path", help="print the directory of the converted (or pulled) model")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_path)

    p = sub.add_parser("push", help="verify a converted model, then upload it to a Hugging Face Hub repo")
    p.add_argument("target", metavar="MODEL|DIR")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the Hub repo (created if missing)")
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created from main if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", metavar="TEXT", help="commit message")
    p.add_argument("--force", action="store_true", help="push even if verify fails; the card says so")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("bench", help="recompute benchmark metrics from local data and judge them against the registry")
    p.add_argument("model", metavar="MODEL|DIR")
    p.add_argument("--data", required=True, help="NQ-tables JSONL dir, BEIR dir(s), or M2KR dir (docs/benchmarks.md)")
    p.add_argument("--split", default="test")
    p.add_argument("--work", help="embedding stores, runs and qrels (default: $ZOO_HOME/bench/<model>)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunk-size", type=int, default=1024, help="corpus items per stored chunk (the resume unit)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--images", help="M2KR: the root img_path is relative to (default: --data)")
    p.add_argument(
        "--backend",
        choices=["zoo", "tf"],
        default="zoo",
        help="tapas: tf runs the independent TF reference on the original checkpoint",
    )
    p.add_argument("--tables-tsv", help="tapas: shipped table embeddings to reproduce (default: beside the checkpoint)")
    p.add_argument("--judge-as", metavar="MODEL", help="registry id whose numbers a model directory is judged against")
    p.add_argument(
        "--engine",
        choices=["single", "ray"],
        default="single",
        help="who encodes the corpus: this process (single), or Ray Data workers (ray; pip install 'zoo[ray]')",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="ray: join this cluster (auto, ray://HOST:10001) and leave it running; default: a local instance",
    )
    p.add_argument("--workers", type=int, metavar="N", help="ray: encoder workers (default: one per GPU)")
    p.add_argument(
        "--gpus-per-worker", type=float, metavar="G", help="ray: GPUs per worker (default: 1 with GPUs, else 0)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("cache", help="what the cache holds: ls, rm, prune, verify")
    cache_sub = p.add_subparsers(dest="cache_verb", required=True, parser_class=_Parser)
    c = cache_sub.add_parser("ls", help="parts and sizes on disk per model, with state")
    c.add_argument("models", nargs="*", metavar="MODEL")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cache_ls)
    c = cache_sub.add_parser("rm", help="remove a model's files (default: all; a Hub model's HF cache snapshot too)")
    c.add_argument("models", nargs="+", metavar="MODEL")
    c.add_argument("--archive", action="store_true", help="only the downloaded archive (and partial downloads)")
    c.add_argument("--raw", action="store_true", help="only the pulled files and their receipt (Hub: the snapshot)")
    c.add_argument("--converted", action="store_true", help="only the converted directory")
    c.add_argument("--dry-run", action="store_true", help="show what would be removed; remove nothing")
    c.add_argument("-y", "--yes", action="store_true", help="do not ask")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cache_rm)
    c = cache_sub.add_parser("prune", help="remove leftovers of killed pulls/conversions and orphaned files")
    c.add_argument("--archives", action="store_true", help="also archives whose extraction is verified")
    c.add_argument("--dry-run", action="store_true", help="show what would be removed; remove nothing")
    c.add_argument("-y", "--yes", action="store_true", help="do not ask")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cache_prune)
    c = cache_sub.add_parser("verify", help="re-hash archives, raw files, converted dirs and HF snapshots offline")
    c.add_argument("models", nargs="*", metavar="MODEL")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cache_verify)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """Only the CLI configures output: zoo's own bars stay, third-party chatter goes unless -v."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow is imported
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _report_error(exc: ZooError, as_json: bool) -> int:
    if as_json:
        fields = {k: v for k, v in vars(exc).items() if not k.startswith("_") and k != "report"}
        print(
            json.dumps(
                {"error": {"type": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code, **fields}},
                indent=2,
                default=str,
            )
        )
    print(f"zoo: error: {exc}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _report_error(exc, "--json" in argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    _quiet_libraries(args.verbose)
    try:
        return int(args.func(args))
    except VerifyFailed as exc:
        return exc.exit_code  # the report was already printed
    except ZooError as exc:
        return _report_error(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


YOUNG_COLLECTION_THRESHOLD = 100_000  # allocations between young collections in the `zoo` process (CPython: 700)
PROCESS_ENVIRONMENT = {"TF_USE_LEGACY_KERAS": "1"}  # set (unless the user did) in the `zoo` process: see entry()
VERB_ENVIRONMENT: Mapping[str, Mapping[str, str]] = {  # and for these verbs only: see entry()
    "convert": {"OMP_WAIT_POLICY": "PASSIVE"},
    "verify": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def process_environment(argv: Sequence[str]) -> dict[str, str]:
    """What the `zoo` process sets for a command line: PROCESS_ENVIRONMENT plus its verb's (the first
    word that is not an option: zoo's global options take no values)."""
    verb = next((arg for arg in argv if not arg.startswith("-")), "")
    return {**PROCESS_ENVIRONMENT, **VERB_ENVIRONMENT.get(verb, {})}


def entry() -> NoReturn:
    """The `zoo` command (console script and `python -m zoo`): main, then a quick exit.

    Importing torch, transformers and TensorFlow creates over a million objects that live as long
    as the process. With CPython's default thresholds the cyclic collector walks them again and
    again while they are created (about 1,900 collections, nine of them full, ~2 s of `zoo convert`
    on a 2-core machine) and frees almost nothing. Young collections every 100,000 allocations
    instead of 700 cut that to about a dozen (~0.8 s); cycles are still collected. The same objects
    are frozen before the interpreter shuts down, so its final collections skip them too. Nothing
    else is skipped: atexit handlers, finalizers and stream flushes still run.

    TensorFlow's own __init__ imports Keras 3, and with it scikit-learn and scipy.stats (~1 s),
    inside a try/except ImportError; zoo never uses Keras. TF_USE_LEGACY_KERAS=1 points that
    import at tf_keras, which zoo does not install, so TensorFlow skips it. Only this process
    sets it (a library cannot know its caller does not use tf.keras), and a user's value stands.

    `zoo convert` and `zoo verify` run torch on small probe batches between reads of weights from
    disk, beside TensorFlow's reference and the weights replay. After each parallel region
    OpenMP's idle threads spin for milliseconds by default (libgomp), and on a 2-core machine
    that spinning takes the CPU from the threads beside them: ~4 of a LARGE `zoo convert`'s
    CPU-seconds. OMP_WAIT_POLICY=PASSIVE (read when torch loads OpenMP) makes them sleep instead.
    Other verbs keep the default: `zoo bench` runs back-to-back operators, where spinning is faster.
    """
    for name, value in process_environment(sys.argv[1:]).items():
        os.environ.setdefault(name, value)
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    code = main()
    gc.freeze()
    sys.exit(code)
