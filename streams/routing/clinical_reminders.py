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

A reminder goes to the ordering institution (the later order's) and names the earlier order: institution,
record key, event id, time. It carries no name, ID number, phone or address; the institution-local patient
id lets the institution find its patient, the platform person id is internal.

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
Among several earlier orders in their windows the most recent one is named.

Identity: a reminder is keyed by the ordering *source record* and what it is about (institution, record
key, kind, item), not by the event id: a correction of the record has a new event id but is the same
order, so a replay, a re-send or a correction updates the one reminder instead of raising a second one.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.routing.drug_classes import class_of_code, drug_class, normalise_code
from streams.standards.china_time import CST

REMINDER_NAMESPACE = uuid.UUID("9b5d0c1e-7a43-4f2e-8c61-2d4f0e7b3a95")
PRESCRIPTION, LAB_REPORT, EXAM_REPORT = "prescription", "lab.report", "exam.report"
ORDER_EVENT_TYPES: frozenset[str] = frozenset((PRESCRIPTION, LAB_REPORT, EXAM_REPORT))


class OrderKind(str, enum.Enum):
    DRUG_CLASS = "drug_class"  # item: ATC level-3 code
    LAB_ITEM = "lab_item"  # item: the lab item code (LOINC or the institution's)
    EXAM_ITEM = "exam_item"  # item: the exam item code


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
class Reminder:
    reminder_id: str
    kind: OrderKind
    item: str
    item_name: str | None
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


def reminder_id(org_code: str, record_key: str, kind: OrderKind, item: str) -> str:
    """Deterministic id of the reminder an order can raise: its source record, kind and item."""
    return str(uuid.uuid5(REMINDER_NAMESPACE, f"{org_code}\x1f{record_key}\x1f{kind.value}\x1f{item}"))


def _aware(value: dt.datetime) -> dt.datetime:
    # fastavro gives aware UTC datetimes; a naive one (hand-built) is taken as UTC rather than local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


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
        return Order(person_id, kind, item, name or None, source["org_code"], source["record_key"],
                     patient["local_patient_id"], env["event_id"], _aware(at), days)

    if event_type == PRESCRIPTION:
        classes: dict[str, tuple[str | None, int | None]] = {}
        for item in event.get("items") or ():
            cls = drug_class(item.get("atc_code"), item.get("drug_code"))
            if cls is None:  # Chinese patent medicine, in-house code without ATC
                continue
            days = _positive(item.get("days"))
            _, known = classes.get(cls.code, (None, None))
            classes[cls.code] = (cls.name_zh or cls.name_en, max(filter(None, (known, days)), default=None))
        return [order(OrderKind.DRUG_CLASS, code, name, event["prescribed_at"], days)
                for code, (name, days) in sorted(classes.items())]
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


def reminders_for(order: Order, earlier: Iterable[Order], windows: ReminderWindows) -> Reminder | None:
    """The reminder ``order`` raises against the orders in ``earlier`` (any orders; those that do not
    qualify are skipped), naming the most recent qualifying one; None when none qualifies.

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
    if best is None:
        return None
    other, window = best
    return Reminder(
        reminder_id(order.org_code, order.record_key, order.kind, order.item), order.kind, order.item,
        order.item_name, order.person_id, order.org_code, order.record_key, order.local_patient_id, order.event_id,
        order.at, other.org_code, other.record_key, other.at, other.event_id, other.org_code == order.org_code,
        window)


def _days_text(window: dt.timedelta) -> str:
    days = window.total_seconds() / 86400
    return f"{days:g}" if days == int(days) else f"{days:.1f}"


def _messages(r: Reminder) -> tuple[str, str]:
    day = r.earlier_at.astimezone(CST).date().isoformat()
    what = f"{r.item}（{r.item_name}）" if r.item_name else r.item
    name_en = class_of_code(r.item).name_en if r.kind is OrderKind.DRUG_CLASS else r.item_name
    what_en = f"{r.item} ({name_en})" if name_en else r.item
    where = "本机构" if r.same_institution else f"机构{r.earlier_org_code}"
    where_en = "this institution" if r.same_institution else f"institution {r.earlier_org_code}"
    days = _days_text(r.window)
    if r.kind is OrderKind.DRUG_CLASS:
        return (f"患者{day}已在{where}开具同类药物 {what}，本次处方在前次用药{days}天内，请核实是否重复用药。",
                f"A drug of the same class {what_en} was prescribed to the patient at {where_en} on {day} and "
                f"its {days}-day window has not passed: check for duplicate therapy.")
    noun, noun_en = ("检验", "lab test") if r.kind is OrderKind.LAB_ITEM else ("检查", "examination")
    return (f"患者{day}已在{where}做过同一{noun}项目 {what}，在{days}天内，可调阅前次结果（检查检验结果互认），"
            f"请核实是否需要重复{noun}。",
            f"The same {noun_en} {what_en} was done for the patient at {where_en} on {day}, within {days} days: "
            f"the earlier result may be reused; check whether a repeat is needed.")


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
        "message_zh": message_zh,
        "message_en": message_en,
    }
