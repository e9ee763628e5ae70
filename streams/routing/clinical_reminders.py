"""Clinical reminders (智能提示, ``alerts.clinical``): the pure core, no I/O (the drug-class table is read
once, on first use).

Rules (issue #6):

* **Drug class**: a person is prescribed a drug of an ATC level-3 class (streams/routing/drug_classes.py)
  while an earlier prescription of the same class, from another source record, should still be lasting:
  at this institution or another one. Duplicate therapy is a risk wherever the first one came from.
  Level 3 is coarse on purpose (the issue's choice): deliberate pairs within a group, such as aspirin and
  clopidogrel (B01A) or metformin and acarbose (A10B), remind when they come on separate prescriptions.
* **Lab item / exam item**: the same lab item code (or exam item code) again within a window, at another
  institution: the earlier result may be reused (检查检验结果互认). A repeat at the same institution is
  that institution's own business (a follow-up test), so it raises nothing.

What one reminder covers (``Order.reminder_key``):

* drug class: one per ordering prescription × class. Two classes on one prescription are two risks.
* lab items: **one per ordering lab report**, listing every item it repeats (``Reminder.repeats``). A
  complete blood count repeated elsewhere is one reminder with six items, not six reminders: a clinician
  decides about the report, and per-item reminders drowned everything else.
* exam item: one per exam report (a report has one exam item).

A reminder goes to the ordering institution (the later order's) and names the earlier order: institution,
record key, event id, time; for each repeated item in ``repeats``, and at the top level the most recent
earlier order among them (so a consumer that reads only the top level still gets a sound reminder). It
carries no name, ID number, phone or address; the institution-local patient id lets the institution find
its patient, the platform person id is internal.

Windows (``ReminderWindows``), with the defaults and why:

* drug class: the earlier prescription's **days supplied** when it states them (the longest item of the
  class), capped at ``drug_supply_cap`` = 90 days (just over the 12 weeks a long-term prescription for a
  stable chronic disease may cover, 长期处方管理规范（试行）2021). A repeat while the earlier supply should
  still last is what a pharmacist calls duplicate therapy; a routine refill after it ran out is not, and a
  fixed 30-day window would flag every monthly refill. When the earlier prescription states no days,
  ``drug_class`` = 7 days: the most an outpatient prescription normally covers (处方管理办法 第十九条,
  "处方一般不得超过7日用量").
* lab item: 7 days (laboratory values move within days); exam item: 30 days (imaging findings hold longer).

Order and ties: an order is earlier than another when its (time, event id) is smaller, so two orders at
the same instant give exactly one reminder: the one with the larger event id reminds, naming the other.
Among several earlier orders of one item in their windows the most recent one is named.

Identity: a reminder is keyed by the ordering *source record* and what it is about, not by the event id:
(institution, record key, kind, item) for a drug class or exam item, (institution, record key, kind) for a
lab report. A correction of the record has a new event id but is the same order, so a replay, a re-send
or a correction updates the one reminder instead of raising a second one, and when none of a lab report's
items repeats any more its one reminder is withdrawn.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foundation.standards.china_time import CST
from streams.routing.drug_classes import class_of_code, drug_class, normalise_code

REMINDER_NAMESPACE = uuid.UUID("9b5d0c1e-7a43-4f2e-8c61-2d4f0e7b3a95")
PRESCRIPTION, LAB_REPORT, EXAM_REPORT = "prescription", "lab.report", "exam.report"
ORDER_EVENT_TYPES: frozenset[str] = frozenset((PRESCRIPTION, LAB_REPORT, EXAM_REPORT))


class OrderKind(str, enum.Enum):
    DRUG_CLASS = "drug_class"  # item: ATC level-3 code
    LAB_ITEM = "lab_item"  # item: the lab item code (LOINC or the institution's)
    EXAM_ITEM = "exam_item"  # item: the exam item code


# Kinds whose reminder covers the whole ordering record (every item it repeats), not one item.
PER_RECORD_KINDS: frozenset[OrderKind] = frozenset((OrderKind.LAB_ITEM,))
ReminderKey = tuple[str, str, OrderKind, "str | None"]  # org_code × record_key × kind × item (None: per record)


class ReminderStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    WITHDRAWN = "WITHDRAWN"  # an order it was built from was cancelled, corrected away or moved to another person


@dataclass(frozen=True, slots=True)
class Order:
    """One thing a source record orders for a person: a drug class, a lab item or an exam item."""

    person_id: str
    kind: OrderKind
    item: str
    item_name: str | None
    org_code: str
    record_key: str  # envelope.source.record_key
    local_patient_id: str
    event_id: str
    at: dt.datetime  # prescribed_at; lab collected_at (else reported_at); exam reported_at
    days: int | None = None  # days supplied, prescriptions only: the longest item of the class

    @property
    def record(self) -> tuple[str, str]:
        return self.org_code, self.record_key

    @property
    def key(self) -> tuple[str, OrderKind, str]:
        """What two orders must share to remind of each other."""
        return self.person_id, self.kind, self.item

    @property
    def reminder_key(self) -> ReminderKey:
        """Which reminder this order belongs to: its record and kind, and its item unless the kind's
        reminder covers the whole record (lab reports)."""
        return self.org_code, self.record_key, self.kind, None if self.kind in PER_RECORD_KINDS else self.item

    @property
    def order_key(self) -> tuple[dt.datetime, str]:
        """Time, then event id: a total order, so a tie at the same instant has one earlier side."""
        return self.at, self.event_id


@dataclass(frozen=True)
class ReminderWindows:
    drug_class: dt.timedelta = dt.timedelta(days=7)  # when the earlier prescription states no days supplied
    lab_item: dt.timedelta = dt.timedelta(days=7)
    exam_item: dt.timedelta = dt.timedelta(days=30)
    drug_supply_cap: dt.timedelta = dt.timedelta(days=90)  # a stated supply counts for at most this long

    def window_of(self, earlier: Order) -> dt.timedelta:
        """How long after ``earlier`` a repeat of it raises a reminder."""
        if earlier.kind is OrderKind.DRUG_CLASS:
            if earlier.days:
                return min(dt.timedelta(days=earlier.days), self.drug_supply_cap)
            return self.drug_class
        return self.lab_item if earlier.kind is OrderKind.LAB_ITEM else self.exam_item

    @property
    def longest(self) -> dt.timedelta:
        """No reminder spans more than this: older orders can be pruned."""
        return max(self.drug_class, self.drug_supply_cap, self.lab_item, self.exam_item)


@dataclass(frozen=True, slots=True)
class Repeat:
    """One item a reminder is about, and the earlier order it repeats (the most recent qualifying one)."""

    item: str
    item_name: str | None
    earlier_org_code: str
    earlier_record_key: str
    earlier_event_id: str
    earlier_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Reminder:
    """One reminder. The ``item`` and ``earlier_*`` fields are the headline: the repeated item codes
    (sorted, joined by ","), and the most recent earlier order among ``repeats``, which lists every
    repeated item (one for a drug class or exam item, each repeated item of a lab report)."""

    reminder_id: str
    kind: OrderKind
    item: str  # the repeated item code, or codes sorted and joined by ","
    item_name: str | None  # its name; for several items their names (the code if unnamed) joined by "、"
    person_id: str
    org_code: str  # the ordering institution: the later order's
    record_key: str
    local_patient_id: str
    event_id: str  # the event of the later order
    at: dt.datetime
    earlier_org_code: str
    earlier_record_key: str
    earlier_at: dt.datetime
    earlier_event_id: str
    same_institution: bool
    window: dt.timedelta
    status: ReminderStatus = ReminderStatus.ACTIVE
    repeats: tuple[Repeat, ...] = ()


def reminder_id(org_code: str, record_key: str, kind: OrderKind, item: str | None = None) -> str:
    """Deterministic id of the reminder an order can raise: its source record and kind, and its item unless
    the kind's reminder covers the whole record (lab reports: ``item`` is ignored)."""
    if kind in PER_RECORD_KINDS:
        return str(uuid.uuid5(REMINDER_NAMESPACE, f"{org_code}\x1f{record_key}\x1f{kind.value}"))
    if item is None:
        raise ValueError(f"a {kind.value} reminder is per item: give the item")
    return str(uuid.uuid5(REMINDER_NAMESPACE, f"{org_code}\x1f{record_key}\x1f{kind.value}\x1f{item}"))


def _aware(value: dt.datetime) -> dt.datetime:
    # fastavro gives aware UTC datetimes; a naive one (hand-built) is taken as UTC rather than local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _positive(days: Any) -> int | None:
    return days if isinstance(days, int) and days > 0 else None


def orders_of(event_type: str, event: Mapping[str, Any]) -> list[Order]:
    """What a decoded event orders: one order per distinct drug class of a prescription, per distinct lab
    item code of a lab report, one for an exam report with an item code. A cancelled event, one without a
    person id and any other event type order nothing."""
    if event_type not in ORDER_EVENT_TYPES:
        return []
    env = event["envelope"]
    person_id = env.get("person_id")
    if env.get("cancelled") or not person_id:
        return []
    source, patient = env["source"], env["patient"]

    def order(kind: OrderKind, item: str, name: str | None, at: dt.datetime, days: int | None = None) -> Order:
        return Order(
            person_id,
            kind,
            item,
            name or None,
            source["org_code"],
            source["record_key"],
            patient["local_patient_id"],
            env["event_id"],
            _aware(at),
            days,
        )

    if event_type == PRESCRIPTION:
        classes: dict[str, tuple[str | None, int | None]] = {}
        for item in event.get("items") or ():
            cls = drug_class(item.get("atc_code"), item.get("drug_code"))
            if cls is None:  # Chinese patent medicine, in-house code without ATC
                continue
            days = _positive(item.get("days"))
            _, known = classes.get(cls.code, (None, None))
            classes[cls.code] = (cls.name_zh or cls.name_en, max(filter(None, (known, days)), default=None))
        return [
            order(OrderKind.DRUG_CLASS, code, name, event["prescribed_at"], days)
            for code, (name, days) in sorted(classes.items())
        ]
    if event_type == LAB_REPORT:
        at = event.get("collected_at") or event["reported_at"]  # when the specimen was taken, if known
        names: dict[str, str | None] = {}
        for item in event.get("items") or ():
            code = normalise_code(item.get("item_code") or "")
            if code and code not in names:
                names[code] = item.get("item_name")
        return [order(OrderKind.LAB_ITEM, code, name, at) for code, name in sorted(names.items())]
    code = normalise_code(event.get("exam_item_code") or "")
    return [order(OrderKind.EXAM_ITEM, code, event.get("exam_item_name"), event["reported_at"])] if code else []


def earlier_order(
    order: Order, earlier: Iterable[Order], windows: ReminderWindows
) -> tuple[Order, dt.timedelta] | None:
    """The order in ``earlier`` (any orders; those that do not qualify are skipped) that ``order`` repeats,
    the most recent qualifying one, with its window; None when none qualifies.

    Qualifying: same person, kind and item; another source record; earlier by (time, event id); within
    the earlier order's window; for lab and exam items, at another institution."""
    best: tuple[Order, dt.timedelta] | None = None
    for other in earlier:
        if other.key != order.key or other.record == order.record or other.order_key >= order.order_key:
            continue
        if order.kind is not OrderKind.DRUG_CLASS and other.org_code == order.org_code:
            continue
        window = windows.window_of(other)
        if order.at - other.at > window:
            continue
        if best is None or other.order_key > best[0].order_key:
            best = (other, window)
    return best


def reminder_for(orders: Sequence[Order], earlier: Iterable[Order], windows: ReminderWindows) -> Reminder | None:
    """The one reminder ``orders`` raise against ``earlier``: ``orders`` are those of one reminder (one
    ``reminder_key``: a prescription's class, a lab report's items, an exam report's item). It lists each
    order that repeats an earlier one (``earlier_order``) and heads with the most recent earlier order
    among them; None when no order repeats anything (or there are no orders)."""
    if not orders:
        return None
    rkey = orders[0].reminder_key
    if any(o.reminder_key != rkey for o in orders):
        raise ValueError(f"orders of several reminders: {sorted({str(o.reminder_key) for o in orders})}")
    by_key: dict[tuple[str, OrderKind, str], list[Order]] = {}
    for other in earlier:
        by_key.setdefault(other.key, []).append(other)
    matches: dict[str, tuple[Order, Order, dt.timedelta]] = {}  # item → (order, earlier order, window)
    for order in orders:
        found = earlier_order(order, by_key.get(order.key, ()), windows)
        if found is not None and order.item not in matches:
            matches[order.item] = (order, *found)
    if not matches:
        return None
    ordered = sorted(matches.items())
    repeats = tuple(
        Repeat(item, order.item_name, other.org_code, other.record_key, other.event_id, other.at)
        for item, (order, other, _) in ordered
    )
    # The headline: the most recent earlier order among the repeats (the first item's on a tie).
    order, other, window = max((match for _, match in ordered), key=lambda m: m[1].order_key)
    name = order.item_name if len(repeats) == 1 else "、".join(r.item_name or r.item for r in repeats)
    return Reminder(
        reminder_id(*rkey),
        order.kind,
        ",".join(item for item, _ in ordered),
        name,
        order.person_id,
        order.org_code,
        order.record_key,
        order.local_patient_id,
        order.event_id,
        order.at,
        other.org_code,
        other.record_key,
        other.at,
        other.event_id,
        other.org_code == order.org_code,
        window,
        ReminderStatus.ACTIVE,
        repeats,
    )


def reminders_for(orders: Iterable[Order], earlier: Iterable[Order], windows: ReminderWindows) -> list[Reminder]:
    """The reminders any ``orders`` raise against ``earlier``: ``reminder_for`` of each reminder key, in
    key order."""
    groups: dict[ReminderKey, list[Order]] = {}
    for order in orders:
        groups.setdefault(order.reminder_key, []).append(order)
    earlier = list(earlier)
    found = (
        reminder_for(group, earlier, windows)
        for _, group in sorted(groups.items(), key=lambda g: (*g[0][:3], g[0][3] or ""))
    )
    return [r for r in found if r is not None]


def _days_text(window: dt.timedelta) -> str:
    days = window.total_seconds() / 86400
    return f"{days:g}" if days == int(days) else f"{days:.1f}"


def _repeats(r: Reminder) -> tuple[Repeat, ...]:
    """The reminder's repeats; a hand-built reminder without them has its headline as its one repeat."""
    return r.repeats or (
        Repeat(r.item, r.item_name, r.earlier_org_code, r.earlier_record_key, r.earlier_event_id, r.earlier_at),
    )


def _messages(r: Reminder) -> tuple[str, str]:
    day = r.earlier_at.astimezone(CST).date().isoformat()
    what = f"{r.item}（{r.item_name}）" if r.item_name else r.item
    name_en = class_of_code(r.item).name_en if r.kind is OrderKind.DRUG_CLASS else r.item_name
    what_en = f"{r.item} ({name_en})" if name_en else r.item
    where = "本机构" if r.same_institution else f"机构{r.earlier_org_code}"
    where_en = "this institution" if r.same_institution else f"institution {r.earlier_org_code}"
    days = _days_text(r.window)
    if r.kind is OrderKind.DRUG_CLASS:
        return (
            f"患者{day}已在{where}开具同类药物 {what}，本次处方在前次用药{days}天内，请核实是否重复用药。",
            f"A drug of the same class {what_en} was prescribed to the patient at {where_en} on {day} and "
            f"its {days}-day window has not passed: check for duplicate therapy.",
        )
    noun, noun_en = ("检验", "lab test") if r.kind is OrderKind.LAB_ITEM else ("检查", "examination")
    if len(r.repeats) <= 1:  # one item: the headline says it all
        return (
            f"患者{day}已在{where}做过同一{noun}项目 {what}，在{days}天内，可调阅前次结果（检查检验结果互认），"
            f"请核实是否需要重复{noun}。",
            f"The same {noun_en} {what_en} was done for the patient at {where_en} on {day}, within {days} days: "
            f"the earlier result may be reused; check whether a repeat is needed.",
        )
    # Several items (a lab report): grouped by the earlier order they repeat, the most recent one first.
    by_earlier: dict[tuple[str, str], list[Repeat]] = {}
    for repeat in sorted(r.repeats, key=lambda x: (x.earlier_at, x.earlier_event_id), reverse=True):
        by_earlier.setdefault((repeat.earlier_org_code, repeat.earlier_record_key), []).append(repeat)
    parts, parts_en = [], []
    for (org_code, _), repeats in by_earlier.items():
        on = repeats[0].earlier_at.astimezone(CST).date().isoformat()
        same = org_code == r.org_code
        items = "、".join(f"{x.item}（{x.item_name}）" if x.item_name else x.item for x in repeats)
        items_en = ", ".join(f"{x.item} ({x.item_name})" if x.item_name else x.item for x in repeats)
        parts.append(f"{on}已在{'本机构' if same else '机构' + org_code}做过同一{noun}项目 {items}")
        parts_en.append(f"{items_en} at {'this institution' if same else 'institution ' + org_code} on {on}")
    return (
        f"患者{'；'.join(parts)}（共{len(r.repeats)}项），在{days}天内，可调阅前次结果（检查检验结果互认），"
        f"请核实是否需要重复{noun}。",
        f"The same {len(r.repeats)} {noun_en} items were done for the patient within {days} days: "
        f"{'; '.join(parts_en)}. The earlier results may be reused; check whether a repeat is needed.",
    )


def reminder_value(reminder: Reminder) -> dict[str, Any]:
    """The Avro-ready value of avro_schemas/alerts/clinical_reminder.avsc (``alerts.clinical_reminder``)."""
    message_zh, message_en = _messages(reminder)
    return {
        "reminder_id": reminder.reminder_id,
        "status": reminder.status.value,
        "kind": reminder.kind.name,
        "item": reminder.item,
        "item_name": reminder.item_name,
        "person_id": reminder.person_id,
        "org_code": reminder.org_code,
        "record_key": reminder.record_key,
        "local_patient_id": reminder.local_patient_id,
        "event_id": reminder.event_id,
        "at": reminder.at,
        "earlier_org_code": reminder.earlier_org_code,
        "earlier_record_key": reminder.earlier_record_key,
        "earlier_event_id": reminder.earlier_event_id,
        "earlier_at": reminder.earlier_at,
        "same_institution": reminder.same_institution,
        "window_seconds": int(reminder.window.total_seconds()),
        "repeats": [
            {
                "item": r.item,
                "item_name": r.item_name,
                "earlier_org_code": r.earlier_org_code,
                "earlier_record_key": r.earlier_record_key,
                "earlier_event_id": r.earlier_event_id,
                "earlier_at": r.earlier_at,
            }
            for r in _repeats(reminder)
        ],
        "message_zh": message_zh,
        "message_en": message_en,
    }
