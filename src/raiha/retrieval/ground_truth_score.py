"""Precision and recall of reference lists against a synthetic world's ground truth.

A retrieved reference is *relevant* when it is a train real image showing the
composite's foreground identity under the composite's background illuminant
(:func:`raiha.world.relevant_reference_table`). For every group of composites
(all, per subset ``easy``/``hard``, per foreground pattern ``solid``/``stripes``/...):

- ``precision_micro`` = hits / retrieved, ``recall_micro`` = hits / relevant (over the
  group), ``precision_per_query`` (mean over composites with at least one reference) and
  ``recall_per_query`` (mean over composites with at least one relevant reference);
- ``recall_at_cap`` = hits / sum(min(relevant, cap)) when the lists were capped;
- the error split of the retrieved references that are not relevant: ``content_only``
  (right illuminant, wrong identity), ``illumination_only`` (right identity, wrong
  illuminant), ``both``, and ``unknown`` (not a train real image of the world, or the
  composite's own real image), as
  fractions of the retrieved references;
- ``same_illuminant`` = fraction of the retrieved references lit like the composite's
  background (what the eps_a ablation ranges change).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from raiha.io.atomic_io import atomic_write_json
from raiha.io.reference_lists import ReferenceEntry, read_reference_list
from raiha.world.ground_truth import relevant_reference_table

ERROR_KINDS = ("content_only", "illumination_only", "both", "unknown")


class _Tally:
    """Counts of one group of composites."""

    def __init__(self) -> None:
        self.queries = self.with_refs = self.with_relevant = 0
        self.retrieved = self.relevant = self.hits = self.capped_relevant = self.same_light = 0
        self.precision_sum = self.recall_sum = 0.0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)

    def add(self, hits: int, retrieved: int, relevant: int, cap: int | None) -> None:
        self.queries += 1
        self.hits, self.retrieved, self.relevant = (
            self.hits + hits,
            self.retrieved + retrieved,
            self.relevant + relevant,
        )
        self.capped_relevant += min(relevant, cap) if cap else relevant
        if retrieved:
            self.with_refs += 1
            self.precision_sum += hits / retrieved
        if relevant:
            self.with_relevant += 1
            self.recall_sum += hits / relevant

    def result(self) -> dict[str, Any]:
        def ratio(num: float, den: float) -> float | None:
            return round(num / den, 4) if den else None

        return {
            "queries": self.queries,
            "empty": self.queries - self.with_refs,
            "retrieved": self.retrieved,
            "relevant": self.relevant,
            "hits": self.hits,
            "precision_micro": ratio(self.hits, self.retrieved),
            "recall_micro": ratio(self.hits, self.relevant),
            "precision_per_query": ratio(self.precision_sum, self.with_refs),
            "recall_per_query": ratio(self.recall_sum, self.with_relevant),
            "recall_at_cap": ratio(self.hits, self.capped_relevant),
            "same_illuminant": ratio(self.same_light, self.retrieved),
            "errors": {kind: ratio(count, self.retrieved) for kind, count in self.errors.items()},
            "error_counts": dict(self.errors),
        }


def score_entries(
    entries: Sequence[ReferenceEntry], ground_truth: dict[str, Any], *, cap: int | None = None
) -> dict[str, Any]:
    """Score one list against ``load_ground_truth(root)``.

    Args:
        entries: the reference list of one split.
        ground_truth: the world's ground truth.
        cap: the ``max_refs`` the list was built with (for ``recall_at_cap``).

    Returns:
        ``{"all": {...}, "subsets": {name: {...}}, "patterns": {name: {...}}}``.
    """
    images = ground_truth["images"]
    relevant_table = relevant_reference_table(ground_truth)
    real_of = {entry["composite"]: real for real, entry in images.items()}
    pattern_of = [entry["pattern"] for entry in ground_truth["classes"]]
    groups: dict[str, dict[str, _Tally]] = {"all": {}, "subsets": {}, "patterns": {}}
    for entry in entries:
        if entry.input not in real_of:
            raise KeyError(
                f"composite {entry.input} of the list is not in the ground truth; score lists of "
                "the same world (same root) only"
            )
        query = images[real_of[entry.input]]
        light, identity = query["illuminant"], query["foreground"]["identity"]
        relevant = relevant_table[entry.input]
        tallies = [
            groups["all"].setdefault("all", _Tally()),
            groups["subsets"].setdefault(query["subset"], _Tally()),
            groups["patterns"].setdefault(pattern_of[query["foreground"]["class"]], _Tally()),
        ]
        hits = sum(ref in relevant for ref in entry.refs)
        for tally in tallies:
            tally.add(hits, len(entry.refs), len(relevant), cap)
        for ref in entry.refs:
            ref_entry = images.get(ref)
            if ref_entry is None or ref_entry["split"] != "train":
                kind = "unknown"
            else:
                same_light = ref_entry["illuminant"] == light
                shows = any(obj["identity"] == identity for obj in ref_entry["objects"])
                for tally in tallies:
                    tally.same_light += same_light
                if ref in relevant:
                    continue
                if same_light:  # right light; showing the identity too is only the own image
                    kind = "unknown" if shows else "content_only"
                else:
                    kind = "illumination_only" if shows else "both"
            for tally in tallies:
                tally.errors[kind] += 1
    return {
        "all": groups["all"].get("all", _Tally()).result(),
        "subsets": {name: tally.result() for name, tally in sorted(groups["subsets"].items())},
        "patterns": {name: tally.result() for name, tally in sorted(groups["patterns"].items())},
    }


def score_reference_lists(
    lists: Mapping[str, str | Path | Sequence[ReferenceEntry]],
    ground_truth: dict[str, Any],
    *,
    cap: int | None = None,
) -> dict[str, Any]:
    """Score the lists of several splits (paths or entries): ``{split: score_entries(...)}``."""
    return {
        split: score_entries(
            read_reference_list(source) if isinstance(source, (str, Path)) else source,
            ground_truth,
            cap=cap,
        )
        for split, source in lists.items()
    }


def write_score(path: str | Path, score: dict[str, Any]) -> Path:
    """Write a score as JSON (atomically)."""
    return atomic_write_json(path, score)
