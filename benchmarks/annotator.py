"""Simulated annotators for `annotation_cost.py`: they correct a mask set with the Edit tab's own
operations only, counting them. Two of them:

- `HonestAnnotator` (`simulate_honest`, the figure reported): sees only what a person sees; its
  policy is documented on the class.
- `Annotator` (`simulate`), kept as the **oracle annotator** for comparison only: it peeks. It
  adopts a rule by its gain over *all* samples (unseen ones included) and stops when the *global*
  F1 against the ground truth reaches the goal, which no person can know. Its figures are a lower
  bound of unknown slack, labelled "oracle annotator" wherever they are printed.

The oracle annotator:

Operations (each counts 1):
  toggle  — flip one token;
  brush   — set a contiguous run of tokens of one sample to one value;
  word    — flip a whole word (a brush whose run is exactly one word's tokens: counted as `word`);
  rule    — a phrase rule applied everywhere (`engine.masks.rules.Rule`, target or never a target);
  accept  — "accept and next" on a reviewed sample (counted apart from the edits).

Policy, greedy: samples are visited in review-queue order (`engine.masks.review.review_queue`
over the selectors' default masks, recomputed before each visit). On a sample, the wrong tokens
are grouped into *stretches*: a maximal run of positions with the same ground-truth value that
holds at least one wrong token; one brush from its first to its last wrong token (one toggle when
that is a single token) fixes the stretch, since every token in between already needs that value.
With rules allowed, before the hand fixes the annotator tries, for each stretch, the phrases a
person could select there (the whole span or the wrong words for a missed target; the wrong words,
each and together, whole words only, for a false target) and applies the rule that saves the most
hand fixes over the whole set (stretches before − after, hand-edited tokens untouched), if it saves
at least 2 (a rule costs 1) and makes more tokens right than wrong; repeated while one does.
(Counting tokens instead of fixes is myopic: a rule that clears one word in the middle of a wrong
run saves no brush, and one that breaks a correct span costs one.) Then the remaining
stretches are fixed by hand, the sample is accepted, and the next one is visited. The annotator
stops as soon as token-level F1 ≥ the goal (checked after every operation).

Precedence is `apply_rules`': base mask < rules in order < hand edits; the final masks are checked
against `apply_rules` and the F1 against `engine.masks.accuracy.mask_accuracy`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.masks.accuracy import mask_accuracy
from engine.masks.review import next_to_review, review_queue
from engine.masks.rules import Rule, apply_rules
from engine.masks.spans import is_answer_token, spans_to_label_mask

OPS = ("toggle", "brush", "word", "rule")


@dataclass
class Case:
    """One forget sample as the annotator sees it: answer text, label offsets, ground-truth spans."""

    answer: str
    offsets: list[tuple[int, int]]
    spans: list  # anything `engine.masks.spans.as_char_span` reads

    @property
    def truth(self) -> list[bool]:
        return spans_to_label_mask(self.offsets, self.spans)


@dataclass
class Outcome:
    """What the annotator did: operation counts, samples reviewed, rules made, final masks and F1."""

    ops: Counter = field(default_factory=Counter)
    accepts: int = 0
    reviewed: list[int] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    masks: list[list[bool]] = field(default_factory=list)
    start_f1: float = 0.0
    f1: float = 0.0

    @property
    def edits(self) -> int:
        """Edit operations (toggle, brush, word, rule), accepts not included."""
        return sum(self.ops[k] for k in OPS)


def word_ids(answer: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Word id per label position as the Edit tab splits words: a new word starts where whitespace
    lies between two tokens or opens a token; the closing EOS gets its own id."""
    ids, word, prev_end = [], -1, None
    for a, b in offsets:
        if a < 0:
            ids.append(-1)
            continue
        if prev_end is None or any(c.isspace() for c in answer[prev_end:a + 1]):
            word += 1
        ids.append(word)
        prev_end = b
    return ids


def count_stretches(truth: Sequence[bool], mask: Sequence[bool], answer_pos: Sequence[bool]) -> int:
    """Hand fixes a sample needs: maximal runs of equal ground truth (over answer tokens) that hold a
    wrong token (one brush or toggle each, see `Annotator.stretches`)."""
    n, prev, wrong_in_run = 0, None, False
    for y, m, a in zip(truth, mask, answer_pos):
        if not a:
            continue
        if y != prev:
            n += wrong_in_run
            prev, wrong_in_run = y, False
        wrong_in_run = wrong_in_run or (m != y)
    return n + wrong_in_run


def f1_of(tp: int, fp: int, fn: int) -> float:
    """F1 = 2TP / (2TP + FP + FN); 1.0 when there is nothing to find and nothing found."""
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


class Annotator:
    """Mutable state of one simulated correction: base masks, rules, hand edits, current masks."""

    def __init__(self, cases: Sequence[Case], base_masks: Sequence[Sequence], voters: Mapping[str, Sequence[Sequence]],
                 use_rules: bool, goal: float = 0.95):
        if len(base_masks) != len(cases):
            raise ValueError(f"{len(base_masks)} base masks for {len(cases)} samples")
        self.cases = list(cases)
        self.truth = [c.truth for c in cases]
        self.answer_pos = [[is_answer_token(o) for o in c.offsets] for c in cases]
        for i, (m, c) in enumerate(zip(base_masks, cases)):
            if len(m) != len(c.offsets):
                raise ValueError(f"sample {i}: base mask has {len(m)} positions, offsets {len(c.offsets)}")
        self.base = [[bool(v) and a for v, a in zip(m, ap)] for m, ap in zip(base_masks, self.answer_pos)]
        self.mask = [list(m) for m in self.base]
        self.hand: list[dict[int, bool]] = [{} for _ in cases]
        self.words = [word_ids(c.answer, c.offsets) for c in cases]
        self.voters = voters
        self.use_rules = use_rules
        self.goal = goal
        self.out = Outcome()
        self.tp = self.fp = self.fn = 0
        for m, t, ap in zip(self.mask, self.truth, self.answer_pos):
            for v, y, a in zip(m, t, ap):
                if a:
                    self.tp += v and y
                    self.fp += v and not y
                    self.fn += y and not v
        self.out.start_f1 = self.f1

    @property
    def f1(self) -> float:
        return f1_of(self.tp, self.fp, self.fn)

    @property
    def done(self) -> bool:
        return self.f1 >= self.goal

    def _set(self, i: int, j: int, value: bool) -> None:
        old, y = self.mask[i][j], self.truth[i][j]
        if old == value or not self.answer_pos[i][j]:
            return
        self.tp += (value and y) - (old and y)
        self.fp += (value and not y) - (old and not y)
        self.fn += (y and not value) - (y and not old)
        self.mask[i][j] = value

    # ------------------------------------------------------------ stretches and hand fixes

    def stretches(self, i: int) -> list[tuple[int, int, bool]]:
        """(first wrong, last wrong, needed value) per maximal equal-truth run holding a wrong token."""
        return _stretches(self.truth[i], self.mask[i], self.answer_pos[i])

    def hand_fix(self, i: int, lo: int, hi: int, value: bool) -> None:
        """One toggle (a single token), word (exactly one word's tokens) or brush over lo..hi."""
        w = self.words[i]
        whole_word = w[lo] == w[hi] and (lo == 0 or w[lo - 1] != w[lo]) and (hi + 1 == len(w) or w[hi + 1] != w[hi])
        kind = "toggle" if lo == hi else "word" if whole_word else "brush"
        for j in range(lo, hi + 1):
            self.hand[i][j] = value
            self._set(i, j, value)
        self.out.ops[kind] += 1

    # ------------------------------------------------------------ phrase rules

    def _phrase(self, i: int, lo: int, hi: int) -> str:
        o = self.cases[i].offsets
        return self.cases[i].answer[o[lo][0]:o[hi][1]].strip()

    def _word_bounds(self, i: int, lo: int, hi: int) -> tuple[int, int]:
        w = self.words[i]
        while lo > 0 and w[lo - 1] == w[lo]:
            lo -= 1
        while hi + 1 < len(w) and w[hi + 1] == w[hi] and self.answer_pos[i][hi + 1]:
            hi += 1
        return lo, hi

    def candidates(self, i: int, lo: int, hi: int, value: bool) -> list[Rule]:
        """The rules a person could make from a selection in this stretch (see the module doc)."""
        phrases = set()
        wlo, whi = self._word_bounds(i, lo, hi)
        phrases.add((self._phrase(i, wlo, whi), True))
        if value:  # the whole ground-truth run (the span) around the missed tokens
            t, s, e = self.truth[i], lo, hi
            while s > 0 and t[s - 1]:
                s -= 1
            while e + 1 < len(t) and t[e + 1]:
                e += 1
            phrases.add((self._phrase(i, s, e), False))
            phrases.add((self._phrase(i, s, e), True))
        else:  # each wrongly marked word alone
            for word in sorted({self.words[i][j] for j in range(wlo, whi + 1)}):
                js = [j for j in range(wlo, whi + 1) if self.words[i][j] == word]
                phrases.add((self._phrase(i, js[0], js[-1]), True))
        rules = []
        for phrase, whole in sorted(phrases):
            if phrase.strip():
                rules.append(Rule(phrase, value, whole_words=whole))
        return rules

    def rule_gain(self, rule: Rule) -> tuple[int, int, list[tuple[int, int]]]:
        """(hand fixes saved, tokens made right − tokens made wrong, positions it changes) if `rule`
        were added last: it covers every occurrence, hand-edited tokens excepted. Hand fixes saved =
        stretches (`count_stretches`) over the set before − after."""
        saved, gain, changes = 0, 0, []
        for i, c in enumerate(self.cases):
            occ = rule.occurrences(c.answer)
            if not occ:
                continue
            cov = spans_to_label_mask(c.offsets, occ)
            row = None
            for j, hit in enumerate(cov):
                if hit and self.answer_pos[i][j] and j not in self.hand[i] and self.mask[i][j] != rule.target:
                    gain += 1 if rule.target == self.truth[i][j] else -1
                    changes.append((i, j))
                    row = row or list(self.mask[i])
                    row[j] = rule.target
            if row is not None:
                saved += count_stretches(self.truth[i], self.mask[i], self.answer_pos[i]) - \
                    count_stretches(self.truth[i], row, self.answer_pos[i])
        return saved, gain, changes

    def apply_rule(self, rule: Rule, changes: list[tuple[int, int]]) -> None:
        self.out.rules.append(rule)
        for i, j in changes:
            self._set(i, j, rule.target)
        self.out.ops["rule"] += 1

    def best_rule(self, i: int):
        """((fixes saved, token gain), rule, changes) of the best rule made on sample i: one that
        saves at least 2 hand fixes over the set (it costs 1 operation) and makes more tokens
        right than wrong; None when no candidate does."""
        best = None
        for lo, hi, value in self.stretches(i):
            for rule in self.candidates(i, lo, hi, value):
                saved, gain, changes = self.rule_gain(rule)
                if saved >= 2 and gain > 0 and (best is None or (saved, gain) > best[0]):
                    best = ((saved, gain), rule, changes)
        return best

    # ------------------------------------------------------------ the loop

    def review(self, i: int) -> None:
        """Fix sample i (rules first when allowed, then by hand), stopping at the goal."""
        while self.use_rules and not self.done:
            best = self.best_rule(i)
            if best is None:
                break
            self.apply_rule(best[1], best[2])
        for lo, hi, value in self.stretches(i):
            if self.done:
                return
            self.hand_fix(i, lo, hi, value)
        if not self.done:
            self.out.accepts += 1

    def run(self) -> Outcome:
        reviewed: set[int] = set()
        while not self.done and len(reviewed) < len(self.cases):
            queue = review_queue(self.voters, self.mask)
            i = next(it.index for it in queue if it.index not in reviewed)
            reviewed.add(i)
            self.out.reviewed.append(i)
            self.review(i)
        self.out.masks = [list(m) for m in self.mask]
        self.out.f1 = self.f1
        self.check()
        return self.out

    def check(self) -> None:
        """The final masks are base + rules + hand edits as `apply_rules` resolves them, and the F1
        is `mask_accuracy`'s token-level F1 (AssertionError otherwise)."""
        offsets = [c.offsets for c in self.cases]
        resolved = apply_rules(self.cases, offsets, self.base, self.out.rules, self.hand)
        assert resolved == self.mask, "simulated masks differ from apply_rules"
        acc = mask_accuracy([c.answer for c in self.cases], offsets, self.mask, [c.spans for c in self.cases])
        f1 = acc.token.f1 if acc.token.f1 is not None else 1.0
        assert abs(f1 - self.f1) < 1e-9, f"F1 {self.f1} differs from mask_accuracy {f1}"


def simulate(cases: Sequence[Case], base_masks: Sequence[Sequence], voters: Mapping[str, Sequence[Sequence]],
             use_rules: bool, goal: float = 0.95) -> Outcome:
    """Run the greedy annotator (module doc) from `base_masks` until token F1 ≥ goal."""
    return Annotator(cases, base_masks, voters, use_rules, goal).run()


# ====================================================================== the honest annotator

class PeekError(RuntimeError):
    """The annotator asked for the ground truth of a sample it has not looked at."""


class TruthView:
    """The ground truth as a person has it: sample i's spans only once i is (or was) in front of
    them (`show`). Asking for any other sample's truth raises `PeekError`, so a policy that peeks
    fails loudly instead of quietly using what no person knows."""

    def __init__(self, cases: Sequence[Case]):
        self._cases = list(cases)
        self._truth: dict[int, list[bool]] = {}
        self.shown: list[int] = []

    def show(self, i: int) -> None:
        if i not in self._truth:
            self._truth[i] = self._cases[i].truth
            self.shown.append(i)

    def truth(self, i: int) -> list[bool]:
        if i not in self._truth:
            raise PeekError(f"sample {i} has not been looked at")
        return self._truth[i]


@dataclass
class HonestOutcome:
    """What the honest annotator did. `curve`: (operations spent, global token F1) after each
    sample, computed by the caller's `score` function for the report only (never read by the
    policy); f1 / start_f1 are None when no `score` was given."""

    ops: Counter = field(default_factory=Counter)
    accepts: int = 0
    reviewed: list[int] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    masks: list[list[bool]] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    start_f1: float | None = None
    f1: float | None = None

    @property
    def edits(self) -> int:
        """Edit operations (toggle, brush, word, rule), accepts not included."""
        return sum(self.ops[k] for k in OPS)

    @property
    def operations(self) -> int:
        """Edits + accepts: every operation a person spends."""
        return self.edits + self.accepts

    def per_sample(self, n: int) -> float:
        """The figure: (edits + accepts) / samples, all samples reviewed."""
        return self.operations / n if n else 0.0


class HonestAnnotator:
    """A person correcting masks in the Edit tab, who only uses what the tab shows them.

    What it sees: every sample's text and current mask (so the review queue, which is computed
    from the selectors' default masks and the current masks, is visible), and — through
    `TruthView` — the spans of the sample in front of it and of samples it already reviewed
    (it plays a person who knows the facts of the sample they are looking at, and remembers what
    they saw). It never sees global F1 and never looks at an unreviewed sample's truth.

    Policy: every sample is reviewed, in review-queue order (recomputed before each visit, as
    "accept and next" does). On a sample:
      1. with rules allowed, for each wrong stretch (as the oracle annotator defines it) it
         considers the phrases a person could select there (`candidates`: a whole fact, or the
         wrongly marked words) and adopts
         a rule only on evidence from reviewed samples (the current one included): the phrase
         occurs in ≥ `min_support` of them with every covered answer token's truth equal to the
         rule's value, in none of them with a contrary token, and the rule saves ≥ 1 hand fix on
         the current sample. Its effect on unreviewed samples is not looked at (they are fixed by
         hand when their turn comes; hand edits beat rules). Best: most fixes saved on the
         current sample, then most supporting samples; repeated while one qualifies.
      2. the remaining wrong stretches are fixed by hand (toggle / word / brush, 1 each);
      3. "accept and next" (1 operation) — every sample is accepted once, edited or not.
    Figure: (edits + accepts) / samples. No stop rule: it stops when every sample is reviewed.
    Not modelled: trying a rule without evidence and undoing it (it would cost rule + look +
    undo = 3 operations); this annotator never gambles.
    """

    def __init__(self, cases: Sequence[Case], base_masks: Sequence[Sequence], voters: Mapping[str, Sequence[Sequence]],
                 use_rules: bool = True, min_support: int = 2,
                 score: Callable[[list[list[bool]]], float] | None = None):
        if len(base_masks) != len(cases):
            raise ValueError(f"{len(base_masks)} base masks for {len(cases)} samples")
        if min_support < 1:
            raise ValueError(f"min_support must be at least 1, got {min_support}")
        self.cases = list(cases)
        self.view = TruthView(cases)
        self.answer_pos = [[is_answer_token(o) for o in c.offsets] for c in cases]
        for i, (m, c) in enumerate(zip(base_masks, cases)):
            if len(m) != len(c.offsets):
                raise ValueError(f"sample {i}: base mask has {len(m)} positions, offsets {len(c.offsets)}")
        self.base = [[bool(v) and a for v, a in zip(m, ap)] for m, ap in zip(base_masks, self.answer_pos)]
        self.mask = [list(m) for m in self.base]
        self.hand: list[dict[int, bool]] = [{} for _ in cases]
        self.words = [word_ids(c.answer, c.offsets) for c in cases]
        self.voters, self.use_rules, self.min_support = voters, use_rules, min_support
        self.score = score
        self.reviewed: set[int] = set()
        self.out = HonestOutcome()

    # what a person sees of sample i once it is in front of them
    def stretches(self, i: int) -> list[tuple[int, int, bool]]:
        return _stretches(self.view.truth(i), self.mask[i], self.answer_pos[i])

    def hand_fix(self, i: int, lo: int, hi: int, value: bool) -> None:
        w = self.words[i]
        whole_word = w[lo] == w[hi] and (lo == 0 or w[lo - 1] != w[lo]) and (hi + 1 == len(w) or w[hi + 1] != w[hi])
        kind = "toggle" if lo == hi else "word" if whole_word else "brush"
        for j in range(lo, hi + 1):
            if self.answer_pos[i][j]:
                self.hand[i][j] = value
                self.mask[i][j] = value
        self.out.ops[kind] += 1

    def candidates(self, i: int, lo: int, hi: int, value: bool) -> list[Rule]:
        """The phrases a person would make a rule of here, from sample i's own text and truth only:
        for a missed fact, the whole fact (the ground-truth run around the missed tokens, as a phrase
        and as whole words) — a person marks "The Bitter Tide" everywhere, never a word such as "of"
        cut out of it; for a false target, the oracle annotator's phrases (the wrongly marked words,
        each and together, `Annotator.candidates`)."""
        shim = _CandidateShim(self.cases[i], self.view.truth(i), self.words[i], self.answer_pos[i])
        rules = Annotator.candidates(shim, 0, lo, hi, value)  # type: ignore[arg-type]
        if value:
            truth, s, e = self.view.truth(i), lo, hi
            while s > 0 and truth[s - 1]:
                s -= 1
            while e + 1 < len(truth) and truth[e + 1]:
                e += 1
            fact = shim._phrase(0, s, e)
            rules = [r for r in rules if r.phrase == fact]
        return rules

    def evidence(self, rule: Rule, current: int) -> tuple[int, int]:
        """(supporting, contrary) reviewed samples (the current one included): samples where the
        phrase covers answer tokens all of whose truth equals the rule's value, and samples where
        it covers at least one token whose truth differs."""
        agree = against = 0
        for j in sorted(self.reviewed | {current}):
            c = self.cases[j]
            occ = rule.occurrences(c.answer)
            if not occ:
                continue
            cov = spans_to_label_mask(c.offsets, occ)
            truth = self.view.truth(j)
            vals = [truth[k] for k, hit in enumerate(cov) if hit and self.answer_pos[j][k]]
            if not vals:
                continue
            if all(v == rule.target for v in vals):
                agree += 1
            else:
                against += 1
        return agree, against

    def _rule_row(self, rule: Rule, i: int) -> list[bool]:
        c, row = self.cases[i], list(self.mask[i])
        occ = rule.occurrences(c.answer)
        for j, hit in enumerate(spans_to_label_mask(c.offsets, occ) if occ else []):
            if hit and self.answer_pos[i][j] and j not in self.hand[i]:
                row[j] = rule.target
        return row

    def best_rule(self, i: int) -> Rule | None:
        truth, best = self.view.truth(i), None
        before = count_stretches(truth, self.mask[i], self.answer_pos[i])
        for lo, hi, value in self.stretches(i):
            for rule in self.candidates(i, lo, hi, value):
                if rule in self.out.rules:
                    continue
                saved = before - count_stretches(truth, self._rule_row(rule, i), self.answer_pos[i])
                if saved < 1:
                    continue
                agree, against = self.evidence(rule, i)
                if agree >= self.min_support and against == 0 and (best is None or (saved, agree) > best[0]):
                    best = ((saved, agree), rule)
        return None if best is None else best[1]

    def apply_rule(self, rule: Rule) -> None:
        """Everywhere, as `apply_rules` resolves it: every covered answer token that no hand edit set."""
        self.out.rules.append(rule)
        for i in range(len(self.cases)):
            self.mask[i] = self._rule_row(rule, i)
        self.out.ops["rule"] += 1

    def review(self, i: int) -> None:
        self.view.show(i)
        while self.use_rules:
            rule = self.best_rule(i)
            if rule is None:
                break
            self.apply_rule(rule)
        for lo, hi, value in self.stretches(i):
            self.hand_fix(i, lo, hi, value)
        self.out.accepts += 1  # "accept and next"
        self.reviewed.add(i)
        self.out.reviewed.append(i)

    def _point(self) -> None:
        if self.score is not None:
            self.out.curve.append((self.out.operations, self.score([list(m) for m in self.mask])))

    def run(self) -> HonestOutcome:
        self._point()
        for _ in range(len(self.cases)):
            i = next_to_review(review_queue(self.voters, self.mask), self.reviewed)
            self.review(i)
            self._point()
        self.out.masks = [list(m) for m in self.mask]
        if self.out.curve:
            self.out.start_f1, self.out.f1 = self.out.curve[0][1], self.out.curve[-1][1]
        offsets = [c.offsets for c in self.cases]
        resolved = apply_rules(self.cases, offsets, self.base, self.out.rules, self.hand)
        assert resolved == self.mask, "simulated masks differ from apply_rules"
        return self.out


@dataclass
class _CandidateShim:
    """Just enough of an `Annotator` for `Annotator.candidates` on one sample (index 0)."""

    case: Case
    truth_row: list[bool]
    word_row: list[int]
    answer_row: list[bool]

    def __post_init__(self):
        self.cases, self.truth, self.words = [self.case], [self.truth_row], [self.word_row]
        self.answer_pos = [self.answer_row]

    _phrase = Annotator._phrase
    _word_bounds = Annotator._word_bounds


def _stretches(t: Sequence[bool], m: Sequence[bool], ap: Sequence[bool]) -> list[tuple[int, int, bool]]:
    """(first wrong, last wrong, needed value) per maximal equal-truth run holding a wrong token."""
    out, j, n = [], 0, len(t)
    while j < n:
        k = j
        while k + 1 < n and ap[k + 1] and t[k + 1] == t[j]:
            k += 1
        wrong = [p for p in range(j, k + 1) if ap[p] and m[p] != t[p]]
        if wrong:
            out.append((wrong[0], wrong[-1], t[j]))
        j = k + 1
    return out


def global_f1(cases: Sequence[Case]) -> Callable[[list[list[bool]]], float]:
    """The reporter's scorer: token-level F1 of masks against every case's truth (for the
    F1-against-operations curve; the honest annotator's policy never calls it)."""
    truth = [c.truth for c in cases]
    answer_pos = [[is_answer_token(o) for o in c.offsets] for c in cases]

    def score(masks: list[list[bool]]) -> float:
        tp = fp = fn = 0
        for m, t, ap in zip(masks, truth, answer_pos):
            for v, y, a in zip(m, t, ap):
                if a:
                    tp += v and y
                    fp += v and not y
                    fn += y and not v
        return f1_of(tp, fp, fn)

    return score


def simulate_honest(cases: Sequence[Case], base_masks: Sequence[Sequence], voters: Mapping[str, Sequence[Sequence]],
                    use_rules: bool = True, min_support: int = 2, report_f1: bool = True) -> HonestOutcome:
    """Run the honest annotator (`HonestAnnotator`) over every sample; with `report_f1`, the
    global F1 is computed after each sample for the report (curve, start_f1, f1)."""
    return HonestAnnotator(cases, base_masks, voters, use_rules, min_support,
                           global_f1(cases) if report_f1 else None).run()
