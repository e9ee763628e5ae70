"""An in-memory master index: the batch linker's twin of the PostgreSQL index.

It answers the same questions `resolution.decide` asks (record key, identifier holders, blocked
candidates, person facts) and applies decisions the same way, with merged persons followed to their
survivor. `link_records` is `healthbus empi link`: the same decide() the stream stage calls, one record
at a time, in input order.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streams.identity.blocking import MAX_RECORDS_PER_KEY, index_keys, query_keys
from streams.identity.features import CITIZEN_ID, MatchFeatures, extract_features
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.record import SourceRecord
from streams.identity.resolution import Candidate, MatchDecision, PersonFacts, ReviewItem, decide, new_person_id
from streams.identity.training import train_model


@dataclass
class MemoryIndex:
    record_person: dict[tuple[str, str], str] = field(default_factory=dict)
    identifiers: dict[tuple[str, str], str] = field(default_factory=dict)
    blocks: dict[str, deque[Candidate]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=MAX_RECORDS_PER_KEY))
    )
    facts: dict[str, PersonFacts] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)

    def survivor(self, person: str) -> str:
        while person in self.merged_into:
            person = self.merged_into[person]
        return person

    def resolve(self, features: MatchFeatures, model: MatchModel) -> tuple[str, MatchDecision]:
        """Decide and apply; returns the person the record now belongs to."""
        record_key = features.record_key
        record_person = self.record_person.get(record_key) if record_key else None
        identifier_persons = {
            key: self.survivor(person)
            for key in features.identifier_keys()
            if (person := self.identifiers.get(key)) is not None
        }
        seen: set[str] = set()
        candidates: list[Candidate] = []
        for key in query_keys(features):
            for candidate in self.blocks.get(key, ()):
                if candidate.features.record_id not in seen:
                    seen.add(candidate.features.record_id)
                    candidates.append(Candidate(self.survivor(candidate.person_id), candidate.features))
        persons = {c.person_id for c in candidates} | set(identifier_persons.values())
        decision = decide(
            features,
            record_person=self.survivor(record_person) if record_person else None,
            identifier_persons=identifier_persons,
            candidates=candidates,
            person_facts={p: self.facts[p] for p in persons if p in self.facts},
            model=model,
        )
        person = decision.person_id or new_person_id(features)
        for absorbed in decision.merge_person_ids:
            self._merge(absorbed, person)
        self._add(features, person)
        return person, decision

    def _merge(self, absorbed: str, survivor: str) -> None:
        self.merged_into[absorbed] = survivor
        a, b = self.facts.pop(absorbed, PersonFacts()), self.facts.get(survivor, PersonFacts())
        self.facts[survivor] = PersonFacts(a.citizen_ids | b.citizen_ids, b.sex or a.sex)

    def _add(self, features: MatchFeatures, person: str) -> None:
        if features.record_key:
            self.record_person.setdefault(features.record_key, person)
        for key in features.identifier_keys():
            self.identifiers.setdefault(key, person)  # the first holder keeps it; conflicts went to review
        facts = self.facts.get(person, PersonFacts())
        citizen_ids = facts.citizen_ids | {v for k, v in features.identifier_keys() if k == CITIZEN_ID}
        self.facts[person] = PersonFacts(frozenset(citizen_ids), facts.sex or features.sex)
        candidate = Candidate(person, features)
        for block in index_keys(features):
            self.blocks[block].append(candidate)


@dataclass(frozen=True)
class BatchLinkResult:
    person_of: dict[str, str]  # record_id -> person_id (survivor)
    rules: Counter[str]
    reviews: list[tuple[str, ReviewItem]]  # (record_id, item)
    model: MatchModel


def link_records(
    records: Sequence[SourceRecord], model: MatchModel | None = None, progress: Callable[[int, int], None] | None = None
) -> BatchLinkResult:
    """Link records in input order; trains the model on the records themselves when none is given."""
    features = [extract_features(r) for r in records]
    if model is None:
        model = train_model(features)
    index = MemoryIndex()
    assigned: list[tuple[str, str]] = []
    rules: Counter[str] = Counter()
    reviews: list[tuple[str, ReviewItem]] = []
    for done, f in enumerate(features, start=1):
        person, decision = index.resolve(f, model)
        assigned.append((f.record_id, person))
        rules[decision.rule.value] += 1
        reviews.extend((f.record_id, item) for item in decision.reviews)
        if progress is not None and (done % 1_000 == 0 or done == len(features)):
            progress(done, len(features))
    return BatchLinkResult({record: index.survivor(person) for record, person in assigned}, rules, reviews, model)
