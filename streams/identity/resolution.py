"""Deciding which person a record belongs to: the one matching core of the stream stage and `empi link`.

`decide` is pure: the caller looks up what the index knows (the record's own key, its identifier keys,
candidate records found by blocking, and each person's vetoing facts) and applies the decision. The
order of evidence:

1. the record key (institution + local patient id) already linked → that person;
2. deterministic identifiers (valid citizen ID, e-health card, insurance card, other document), strongest
   first; identifiers pointing at several compatible persons prove those persons are one (they merge);
3. Fellegi-Sunter score against the candidates, person by person (a person scores its best record):
   ≥ link weight → link; ≥ review weight → a new person plus a "possible match" review item; else new.
   Other persons also above the link weight are the same resident split earlier: the record proves it,
   and they merge into the chosen person (the index audits it and publishes `empi.person_merged`).

A score counts only where personal evidence corroborates it (`comparison.personally_corroborated`):
a household's shared phone and address never link its members by themselves. Vetoes hold at every step: a person with another valid ID number, or the other known sex, is never the
record's person, however strong the other evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from streams.identity.comparison import compare, personally_corroborated, veto
from streams.identity.features import MatchFeatures
from streams.identity.fellegi_sunter import MatchModel


class MatchRule(StrEnum):
    RECORD_KEY = "record_key"
    CITIZEN_ID = "citizen_id"
    HEALTH_CARD = "health_card"
    INSURANCE_CARD = "insurance_card"
    DOCUMENT = "document"
    PROBABILISTIC = "probabilistic"
    NEW_PERSON = "new_person"


class ReviewReason(StrEnum):
    POSSIBLE_MATCH = "possible_match"  # scored between the thresholds
    IDENTIFIER_CONFLICT = "identifier_conflict"  # an identifier is held by a person the record can't be
    AMBIGUOUS = "ambiguous"  # two persons that can't be one both score above the link weight


@dataclass(frozen=True, slots=True)
class Candidate:
    person_id: str
    features: MatchFeatures


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What vetoes a link to a person: its valid ID numbers and its known sex."""

    citizen_ids: frozenset[str] = frozenset()
    sex: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewItem:
    reason: ReviewReason
    candidate_person_id: str
    weight: float | None
    detail: dict[str, object]


@dataclass(frozen=True, slots=True)
class MatchDecision:
    person_id: str | None  # None: create a new person for this record
    rule: MatchRule
    weight: float | None = None  # the Fellegi-Sunter match weight (bits) where one was computed
    detail: dict[str, object] = field(default_factory=dict)  # the identifier used, or per-comparison weights
    merge_person_ids: tuple[str, ...] = ()  # persons proven to be person_id by this record's identifiers
    reviews: tuple[ReviewItem, ...] = ()


_RULE_OF_KIND = {
    "citizen_id": MatchRule.CITIZEN_ID,
    "health_card": MatchRule.HEALTH_CARD,
    "insurance_card": MatchRule.INSURANCE_CARD,
    "document": MatchRule.DOCUMENT,
}


_PERSON_NAMESPACE = uuid.UUID("6f1d3c52-7e0b-5a8e-9c51-4b0f2a9d7e13")


def new_person_id(record: MatchFeatures) -> str:
    """The id of the person a record founds: derived from the record, so a replay founds the same one."""
    key = f"{record.org_code}:{record.local_id}" if record.record_key else f"record:{record.record_id}"
    return str(uuid.uuid5(_PERSON_NAMESPACE, key))


def person_vetoes(record: MatchFeatures, facts: PersonFacts | None) -> str | None:
    if facts is None:
        return None
    if record.citizen_id and facts.citizen_ids and record.citizen_id not in facts.citizen_ids:
        return "different_valid_id_numbers"
    if record.sex and facts.sex and record.sex != facts.sex:
        return "different_sexes"
    return None


def _combined(a: PersonFacts | None, b: PersonFacts | None) -> PersonFacts:
    a, b = a or PersonFacts(), b or PersonFacts()
    return PersonFacts(a.citizen_ids | b.citizen_ids, a.sex or b.sex)


def _facts_compatible(a: PersonFacts | None, b: PersonFacts | None) -> bool:
    if a is None or b is None:
        return True
    if a.citizen_ids and b.citizen_ids and a.citizen_ids != b.citizen_ids:
        return False
    return not (a.sex and b.sex and a.sex != b.sex)


def decide(
    record: MatchFeatures,
    *,
    record_person: str | None,
    identifier_persons: Mapping[tuple[str, str], str],
    candidates: Sequence[Candidate],
    person_facts: Mapping[str, PersonFacts],
    model: MatchModel,
) -> MatchDecision:
    reviews: list[ReviewItem] = []

    # 1. The record itself is known. New identifiers it now carries that belong to someone else are a
    #    conflict for review, never a silent move.
    if record_person is not None:
        for key in record.identifier_keys():
            holder = identifier_persons.get(key)
            if holder is not None and holder != record_person:
                reviews.append(ReviewItem(ReviewReason.IDENTIFIER_CONFLICT, holder, None, {"identifier": key[0]}))
        return MatchDecision(record_person, MatchRule.RECORD_KEY, reviews=tuple(reviews))

    # 2. Deterministic identifiers, strongest first.
    chosen: str | None = None
    chosen_kind = ""
    merged_facts = PersonFacts()
    merges: list[str] = []
    for key in record.identifier_keys():
        holder = identifier_persons.get(key)
        if holder is None or holder == chosen or holder in merges:
            continue
        why_not = person_vetoes(record, person_facts.get(holder))
        if why_not is not None:
            reviews.append(
                ReviewItem(ReviewReason.IDENTIFIER_CONFLICT, holder, None, {"identifier": key[0], "veto": why_not})
            )
        elif chosen is None:
            chosen, chosen_kind = holder, key[0]
            merged_facts = _combined(person_facts.get(chosen), None)
        elif _facts_compatible(merged_facts, person_facts.get(holder)):
            merges.append(holder)
            merged_facts = _combined(merged_facts, person_facts.get(holder))
        else:
            reviews.append(
                ReviewItem(
                    ReviewReason.IDENTIFIER_CONFLICT,
                    holder,
                    None,
                    {"identifier": key[0], "veto": "persons_incompatible"},
                )
            )

    # 3. Probabilistic: the best-scoring record of each person that isn't vetoed.
    ranked = _score_persons(record, candidates, person_facts, model)
    if chosen is not None:
        # Persons that also match strongly are the chosen one split earlier (a record without this
        # identifier founded them): this record proves the link, so they merge unless facts forbid it.
        for other, (weight, _) in ranked:
            if weight < model.link_weight:
                break
            if other != chosen and other not in merges:
                if _facts_compatible(merged_facts, person_facts.get(other)):
                    merges.append(other)
                    merged_facts = _combined(merged_facts, person_facts.get(other))
        return MatchDecision(
            chosen,
            _RULE_OF_KIND[chosen_kind],
            detail={"identifier": chosen_kind},
            merge_person_ids=tuple(merges),
            reviews=tuple(reviews),
        )
    if ranked and ranked[0][1][0] >= model.review_weight:
        person, (weight, features) = ranked[0]
        detail = model.explain(compare(record, features))
        detail["matched_record"] = features.record_id
        if weight >= model.link_weight:
            merged_facts = _combined(person_facts.get(person), None)
            for other, (other_weight, _) in ranked[1:]:
                if other_weight < model.link_weight:
                    break
                if _facts_compatible(merged_facts, person_facts.get(other)):
                    merges.append(other)
                    merged_facts = _combined(merged_facts, person_facts.get(other))
                else:
                    reviews.append(ReviewItem(ReviewReason.AMBIGUOUS, other, round(other_weight, 2), {}))
            return MatchDecision(
                person,
                MatchRule.PROBABILISTIC,
                weight=round(weight, 2),
                detail=detail,
                merge_person_ids=tuple(merges),
                reviews=tuple(reviews),
            )
        reviews.append(ReviewItem(ReviewReason.POSSIBLE_MATCH, person, round(weight, 2), detail))
        return MatchDecision(None, MatchRule.NEW_PERSON, weight=round(weight, 2), reviews=tuple(reviews))
    return MatchDecision(None, MatchRule.NEW_PERSON, reviews=tuple(reviews))


def _score_persons(
    record: MatchFeatures, candidates: Sequence[Candidate], person_facts: Mapping[str, PersonFacts], model: MatchModel
) -> list[tuple[str, tuple[float, MatchFeatures]]]:
    """Persons by their best record's match weight, highest first; vetoed persons left out."""
    best: dict[str, tuple[float, MatchFeatures]] = {}
    vetoed: set[str] = set()
    for candidate in candidates:
        person = candidate.person_id
        if person in vetoed:
            continue
        if veto(record, candidate.features) or person_vetoes(record, person_facts.get(person)):
            vetoed.add(person)
            best.pop(person, None)
            continue
        vector = compare(record, candidate.features)
        if not personally_corroborated(vector):
            continue
        weight = model.match_weight(vector)
        if person not in best or weight > best[person][0]:
            best[person] = (weight, candidate.features)
    return sorted(best.items(), key=lambda item: item[1][0], reverse=True)
