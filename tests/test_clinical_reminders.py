"""Clinical reminders, the pure core: drug classes, what an event orders, and each reminder rule."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import fastavro
import pytest

from avro_schemas.envelope import make_event_id
from avro_schemas.schema_set import current_schemas
from avro_schemas.serde import EventCodec
from streams.routing.clinical_reminders import (
    Order,
    OrderKind,
    Reminder,
    ReminderStatus,
    ReminderWindows,
    Repeat,
    orders_of,
    reminder_for,
    reminder_id,
    reminder_value,
    reminders_for,
)
from streams.routing.drug_classes import ANATOMICAL_GROUPS, DATA_PATH, DrugClass, drug_class
from synthetic.orders import DRUGS

UTC = dt.UTC
T0 = dt.datetime(2025, 3, 3, 2, 30, tzinfo=UTC)
DAY = dt.timedelta(days=1)
HOSPITAL_A, HOSPITAL_B, CLINIC_C = "12411500416950127X", "12411502MB1736581E", "52411503MJ3201766Q"
VALSARTAN, IRBESARTAN, AMLODIPINE = (
    ("C09CA03", "H001", "缬沙坦胶囊"),
    ("C09CA04", "H002", "厄贝沙坦片"),
    ("C08CA01", "H003", "苯磺酸氨氯地平片"),
)
LIANHUA = (None, "ZA04AAL0123010104483", "连花清瘟胶囊")  # a Chinese patent medicine: no ATC class
CODEC = EventCodec()
WINDOWS = ReminderWindows()
# Personal data the patient block carries and no reminder may repeat.
PERSONAL = {
    "name": "王秀兰",
    "id_number": "411502195803154427",
    "phone": "13837612345",
    "address": "信阳市浉河区民权街12号",
    "health_card": "E41150200012345",
    "insurance_card": "411500987654",
}


# -- event builders (the fastavro form: aware datetimes) ------------------------------------------------------


def envelope(
    event_type: str,
    org: str,
    record_key: str,
    at: dt.datetime,
    person: str | None = "p-1",
    version: int = 1,
    cancelled: bool = False,
    patient: str = "MZ0001",
) -> dict[str, Any]:
    return {
        "event_id": make_event_id(org, record_key, version, cancelled),
        "event_type": event_type,
        "occurred_at": at,
        "emitted_at": at + dt.timedelta(hours=1),
        "record_version": version,
        "cancelled": cancelled,
        "source": {
            "org_code": org,
            "org_name": None,
            "system": "HIS",
            "region_code": "411502",
            "level": "HOSPITAL",
            "record_key": record_key,
        },
        "patient": {
            "local_patient_id": patient,
            "name": PERSONAL["name"],
            "sex": "2",
            "birth_date": None,
            "id_type": "01",
            "id_number": PERSONAL["id_number"],
            "health_card": PERSONAL["health_card"],
            "insurance_card": PERSONAL["insurance_card"],
            "phone": PERSONAL["phone"],
            "address": PERSONAL["address"],
            "residence_region_code": "411502",
            "occupation": None,
        },
        "person_id": person,
        "identity": None,
    }


def prescription(
    org: str,
    number: str,
    at: dt.datetime,
    drugs: Sequence[tuple[str | None, str, str] | tuple[str | None, str, str, int | None]],
    **env: Any,
) -> dict[str, Any]:
    items = []
    for drug in drugs:
        atc, code, name, days = (*drug, 14) if len(drug) == 3 else drug
        items.append(
            {
                "drug_code": code,
                "drug_name": name,
                "atc_code": atc,
                "dose": 1.0,
                "dose_unit": "片",
                "frequency": "qd",
                "route": "口服",
                "days": days,
                "quantity": 14.0,
            }
        )
    return {
        "envelope": envelope("prescription", org, f"prescription:{number}", at, **env),
        "prescription_no": number,
        "visit_no": None,
        "prescribed_at": at,
        "department_name": "心内科",
        "items": items,
    }


def lab_report(
    org: str,
    number: str,
    collected: dt.datetime | None,
    codes: Sequence[tuple[str, str]],
    reported: dt.datetime | None = None,
    **env: Any,
) -> dict[str, Any]:
    reported = reported or (collected or T0) + dt.timedelta(hours=2)
    return {
        "envelope": envelope("lab.report", org, f"lab_report:{number}", reported, **env),
        "report_no": number,
        "specimen_type": "全血",
        "collected_at": collected,
        "reported_at": reported,
        "department_name": "内科",
        "items": [
            {
                "item_code": code,
                "item_name": name,
                "result_text": None,
                "numeric_value": 5.0,
                "unit": None,
                "reference_range": None,
                "reference_low": None,
                "reference_high": None,
                "abnormal_flag": "N",
            }
            for code, name in codes
        ],
    }


def exam_report(
    org: str, number: str, reported: dt.datetime, code: str | None, name: str | None = "胸部CT平扫", **env: Any
) -> dict[str, Any]:
    return {
        "envelope": envelope("exam.report", org, f"exam_report:{number}", reported, **env),
        "report_no": number,
        "modality": "CT",
        "exam_item_code": code,
        "exam_item_name": name,
        "body_part": "胸部",
        "findings": "双肺野清晰。",
        "impression": "未见明显异常。",
        "reported_at": reported,
    }


def decoded(event_type: str, event: dict[str, Any]) -> dict[str, Any]:
    """The event as a stage sees it: encoded with its schema, decoded by the codec."""
    return CODEC.decode(CODEC.encode(event_type, event)).value


def only(orders: list[Order]) -> Order:
    assert len(orders) == 1, orders
    return orders[0]


# -- drug classes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("atc", ["C09CA03", "C09CA", "C09C", " c09ca03 ", "Ｃ０９ＣＡ０３", "C09 CA03"])
def test_an_atc_code_of_level_3_to_5_gives_its_level_3_class_after_normalising(atc: str) -> None:
    assert drug_class(atc, None) == DrugClass(
        "C09C", "Angiotensin II receptor blockers (ARBs), plain", "血管紧张素II受体拮抗剂，单方"
    )


@pytest.mark.parametrize("atc", ["", "C", "C09", "C0", "C09CA0", "C09CA031", "09CA03", "E01AA01", "C09-CA03"])
def test_a_short_or_malformed_atc_code_gives_no_class(atc: str) -> None:
    assert drug_class(atc, "H001") is None


def test_a_national_insurance_code_of_a_western_medicine_gives_its_class() -> None:
    assert drug_class(None, "XC09CAX123A001010100000").code == "C09C"
    assert drug_class(None, "XA10BAE054A001010100241").code == "A10B"
    assert drug_class("C09", "xa10bae054a001010100241").code == "A10B"  # a malformed ATC code counts as missing
    assert drug_class("C08CA01", "XA10BAE054A001010100241").code == "C08C"  # the item's ATC code wins


@pytest.mark.parametrize(
    "code", ["ZA04AAL0123010104483", "Z00000001", "X300012", "Y100005", "XC09", "XE01AAX12", "H001", "", None]
)
def test_chinese_patent_medicines_and_in_house_codes_give_no_class(code: str | None) -> None:
    assert drug_class(None, code) is None


def test_a_well_formed_class_the_table_lacks_still_counts_with_empty_names() -> None:
    assert drug_class("C11AA01", None) == DrugClass("C11A", "", "")


def test_the_shipped_table_covers_every_anatomical_group_and_the_synthetic_drugs() -> None:
    with DATA_PATH.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    codes = {row["code"] for row in rows}
    assert all(row["name_en"] and row["name_zh"] for row in rows)
    assert {code[0] for code in codes} == set(ANATOMICAL_GROUPS)
    for group, expected in {"A": 42, "B": 13, "C": 40, "J": 20, "M": 10, "N": 20, "R": 13}.items():
        assert sum(code.startswith(group) for code in codes) == expected, group
    for drug in DRUGS.values():
        if drug.atc is not None:
            assert drug_class(drug.atc, None).name_zh, drug  # every synthetic drug's class has names
        else:
            assert drug_class(drug.atc, "Z0001") is None


# -- what an event orders --------------------------------------------------------------------------------------


def test_a_prescription_orders_each_distinct_drug_class_once_with_the_longest_supply() -> None:
    event = prescription(HOSPITAL_A, "CF1", T0, [(*VALSARTAN, 14), (*IRBESARTAN, 28), AMLODIPINE, LIANHUA])
    orders = orders_of("prescription", decoded("prescription", event))
    assert [(o.kind, o.item, o.days) for o in orders] == [
        (OrderKind.DRUG_CLASS, "C08C", 14),
        (OrderKind.DRUG_CLASS, "C09C", 28),
    ]
    arb = orders[1]
    assert (arb.person_id, arb.org_code, arb.record_key, arb.local_patient_id, arb.event_id, arb.at) == (
        "p-1",
        HOSPITAL_A,
        "prescription:CF1",
        "MZ0001",
        event["envelope"]["event_id"],
        T0,
    )
    assert arb.item_name == "血管紧张素II受体拮抗剂，单方" and arb.at.tzinfo is not None


def test_a_prescription_of_chinese_patent_medicines_only_orders_nothing() -> None:
    assert orders_of("prescription", prescription(HOSPITAL_A, "CF2", T0, [LIANHUA])) == []


def test_a_lab_report_orders_each_distinct_item_at_its_collection_time() -> None:
    event = lab_report(HOSPITAL_A, "L1", T0, [("GLU", "葡萄糖"), ("hba1c", "糖化血红蛋白"), ("GLU", "血糖")])
    orders = orders_of("lab.report", decoded("lab.report", event))
    assert [(o.kind, o.item, o.item_name, o.at) for o in orders] == [
        (OrderKind.LAB_ITEM, "GLU", "葡萄糖", T0),
        (OrderKind.LAB_ITEM, "HBA1C", "糖化血红蛋白", T0),
    ]
    later = T0 + dt.timedelta(hours=3)
    assert only(orders_of("lab.report", lab_report(HOSPITAL_A, "L2", None, [("CRP", "C反应蛋白")], later))).at == later


def test_an_exam_report_orders_its_item_and_without_a_code_nothing() -> None:
    order = only(orders_of("exam.report", decoded("exam.report", exam_report(HOSPITAL_B, "E1", T0, "CT0201"))))
    assert (order.kind, order.item, order.item_name, order.at) == (OrderKind.EXAM_ITEM, "CT0201", "胸部CT平扫", T0)
    assert orders_of("exam.report", exam_report(HOSPITAL_B, "E2", T0, None)) == []


def test_cancelled_unidentified_and_other_events_order_nothing() -> None:
    assert orders_of("prescription", prescription(HOSPITAL_A, "CF3", T0, [VALSARTAN], cancelled=True)) == []
    assert orders_of("prescription", prescription(HOSPITAL_A, "CF3", T0, [VALSARTAN], person=None)) == []
    assert orders_of("outpatient.visit", prescription(HOSPITAL_A, "CF3", T0, [VALSARTAN])) == []


# -- the rules -------------------------------------------------------------------------------------------------


def drug_order(
    org: str,
    number: str,
    at: dt.datetime,
    atc_drug: tuple[str | None, str, str] = VALSARTAN,
    days: int | None = 14,
    **env: Any,
) -> Order:
    return only(orders_of("prescription", prescription(org, number, at, [(*atc_drug, days)], **env)))


def lab_order(org: str, number: str, at: dt.datetime, code: str = "HBA1C", **env: Any) -> Order:
    return only(orders_of("lab.report", lab_report(org, number, at, [(code, "糖化血红蛋白")], **env)))


def exam_order(org: str, number: str, at: dt.datetime, code: str = "CT0201", **env: Any) -> Order:
    return only(orders_of("exam.report", exam_report(org, number, at, code, **env)))


def test_the_same_drug_class_at_another_institution_within_the_earlier_supply_reminds() -> None:
    earlier = drug_order(HOSPITAL_A, "CF10", T0, VALSARTAN, days=28)
    later = drug_order(HOSPITAL_B, "CF11", T0 + 20 * DAY, IRBESARTAN, patient="ZY0042")
    reminder = reminder_for([later], [earlier], WINDOWS)
    assert reminder == Reminder(
        reminder_id(HOSPITAL_B, "prescription:CF11", OrderKind.DRUG_CLASS, "C09C"),
        OrderKind.DRUG_CLASS,
        "C09C",
        "血管紧张素II受体拮抗剂，单方",
        "p-1",
        HOSPITAL_B,
        "prescription:CF11",
        "ZY0042",
        later.event_id,
        T0 + 20 * DAY,
        HOSPITAL_A,
        "prescription:CF10",
        T0,
        earlier.event_id,
        False,
        28 * DAY,
        ReminderStatus.ACTIVE,
        (Repeat("C09C", "血管紧张素II受体拮抗剂，单方", HOSPITAL_A, "prescription:CF10", earlier.event_id, T0),),
    )


def test_the_same_drug_class_at_the_same_institution_in_another_record_reminds_too() -> None:
    earlier, later = drug_order(HOSPITAL_A, "CF20", T0), drug_order(HOSPITAL_A, "CF21", T0 + 3 * DAY)
    reminder = reminder_for([later], [earlier], WINDOWS)
    assert reminder is not None and reminder.same_institution and reminder.earlier_record_key == "prescription:CF20"


def test_a_drug_class_repeat_after_the_earlier_supply_ran_out_does_not_remind() -> None:
    earlier = drug_order(HOSPITAL_A, "CF30", T0, days=14)
    assert reminder_for([drug_order(HOSPITAL_B, "CF31", T0 + 14 * DAY)], [earlier], WINDOWS) is not None  # inclusive
    assert reminder_for([drug_order(HOSPITAL_B, "CF32", T0 + 15 * DAY)], [earlier], WINDOWS) is None


def test_without_a_stated_supply_the_drug_window_applies_and_a_stated_one_is_capped() -> None:
    unknown = drug_order(HOSPITAL_A, "CF40", T0, days=None)
    assert unknown.days is None
    assert reminder_for([drug_order(HOSPITAL_B, "CF41", T0 + 7 * DAY)], [unknown], WINDOWS).window == 7 * DAY
    assert reminder_for([drug_order(HOSPITAL_B, "CF42", T0 + 8 * DAY)], [unknown], WINDOWS) is None
    year = drug_order(HOSPITAL_A, "CF43", T0, days=365)
    assert reminder_for([drug_order(HOSPITAL_B, "CF44", T0 + 90 * DAY)], [year], WINDOWS).window == 90 * DAY
    assert reminder_for([drug_order(HOSPITAL_B, "CF45", T0 + 91 * DAY)], [year], WINDOWS) is None
    assert (
        reminder_for([drug_order(HOSPITAL_B, "CF46", T0 + 8 * DAY)], [unknown], ReminderWindows(drug_class=10 * DAY))
        is not None
    )


def test_another_drug_class_another_person_or_a_later_order_does_not_remind() -> None:
    later = drug_order(HOSPITAL_B, "CF51", T0 + DAY)
    assert reminder_for([later], [drug_order(HOSPITAL_A, "CF50", T0, AMLODIPINE)], WINDOWS) is None
    assert reminder_for([later], [drug_order(HOSPITAL_A, "CF52", T0, person="p-2")], WINDOWS) is None
    assert reminder_for([drug_order(HOSPITAL_A, "CF53", T0)], [later], WINDOWS) is None  # the other one is later


def test_the_same_record_re_sent_or_corrected_does_not_remind_of_itself() -> None:
    first = drug_order(HOSPITAL_A, "CF60", T0)
    corrected = drug_order(HOSPITAL_A, "CF60", T0 + dt.timedelta(hours=1), version=2)
    assert first.event_id != corrected.event_id
    assert reminder_for([corrected], [first], WINDOWS) is None


def test_a_reminder_names_the_most_recent_qualifying_earlier_order() -> None:
    oldest, recent = drug_order(HOSPITAL_A, "CF70", T0), drug_order(CLINIC_C, "CF71", T0 + 2 * DAY)
    out_of_window = drug_order(HOSPITAL_A, "CF72", T0 - 30 * DAY)
    later = drug_order(HOSPITAL_B, "CF73", T0 + 5 * DAY)
    reminder = reminder_for([later], [out_of_window, recent, oldest], WINDOWS)
    assert (reminder.earlier_org_code, reminder.earlier_record_key) == (CLINIC_C, "prescription:CF71")


def test_two_orders_at_the_same_instant_give_exactly_one_reminder_from_the_larger_event_id() -> None:
    one, other = drug_order(HOSPITAL_A, "CF80", T0), drug_order(HOSPITAL_B, "CF81", T0)
    reminders = [r for r in (reminder_for([one], [other], WINDOWS), reminder_for([other], [one], WINDOWS)) if r]
    assert len(reminders) == 1
    assert reminders[0].event_id == max(one.event_id, other.event_id)
    assert reminders[0].earlier_event_id == min(one.event_id, other.event_id)


def test_the_same_lab_item_at_another_institution_within_7_days_reminds() -> None:
    earlier = lab_order(HOSPITAL_A, "L10", T0)
    reminder = reminder_for([lab_order(HOSPITAL_B, "L11", T0 + 6 * DAY)], [earlier], WINDOWS)
    assert reminder is not None and (reminder.kind, reminder.item, reminder.window) == (
        OrderKind.LAB_ITEM,
        "HBA1C",
        7 * DAY,
    )
    assert not reminder.same_institution and reminder.earlier_at == T0


def test_a_lab_item_repeated_at_the_same_institution_after_7_days_or_another_item_does_not_remind() -> None:
    earlier = lab_order(HOSPITAL_A, "L20", T0)
    assert reminder_for([lab_order(HOSPITAL_A, "L21", T0 + DAY)], [earlier], WINDOWS) is None  # its own follow-up
    assert reminder_for([lab_order(HOSPITAL_B, "L22", T0 + 8 * DAY)], [earlier], WINDOWS) is None
    assert reminder_for([lab_order(HOSPITAL_B, "L23", T0 + DAY, "GLU")], [earlier], WINDOWS) is None


def test_the_same_exam_item_at_another_institution_within_30_days_reminds_and_not_later() -> None:
    earlier = exam_order(HOSPITAL_A, "E10", T0)
    assert reminder_for([exam_order(HOSPITAL_B, "E11", T0 + 29 * DAY)], [earlier], WINDOWS).window == 30 * DAY
    assert reminder_for([exam_order(HOSPITAL_B, "E12", T0 + 31 * DAY)], [earlier], WINDOWS) is None
    assert reminder_for([exam_order(HOSPITAL_A, "E13", T0 + DAY)], [earlier], WINDOWS) is None
    assert reminder_for([exam_order(HOSPITAL_B, "E14", T0 + DAY, "DR0101")], [earlier], WINDOWS) is None


# -- lab reports: one reminder per report -----------------------------------------------------------------------

CBC = [
    ("WBC", "白细胞计数"),
    ("RBC", "红细胞计数"),
    ("HGB", "血红蛋白"),
    ("PLT", "血小板计数"),
    ("NEUT%", "中性粒细胞百分比"),
    ("LYMPH%", "淋巴细胞百分比"),
]


def lab_orders(
    org: str, number: str, at: dt.datetime, codes: Sequence[tuple[str, str]] = CBC, **env: Any
) -> list[Order]:
    return orders_of("lab.report", decoded("lab.report", lab_report(org, number, at, codes, **env)))


def test_a_complete_blood_count_repeated_at_another_institution_is_one_reminder_listing_its_6_items() -> None:
    earlier = lab_orders(HOSPITAL_A, "L30", T0)
    later = lab_orders(HOSPITAL_B, "L31", T0 + 2 * DAY, patient="ZY0042")
    reminders = reminders_for(later, earlier, WINDOWS)
    assert len(reminders) == 1
    reminder = reminders[0]
    assert reminder == reminder_for(later, earlier, WINDOWS)
    assert reminder.reminder_id == reminder_id(HOSPITAL_B, "lab_report:L31", OrderKind.LAB_ITEM)
    assert (reminder.kind, reminder.item, reminder.org_code, reminder.record_key, reminder.local_patient_id) == (
        OrderKind.LAB_ITEM,
        "HGB,LYMPH%,NEUT%,PLT,RBC,WBC",
        HOSPITAL_B,
        "lab_report:L31",
        "ZY0042",
    )
    assert reminder.item_name == "血红蛋白、淋巴细胞百分比、中性粒细胞百分比、血小板计数、红细胞计数、白细胞计数"
    assert (
        reminder.earlier_org_code,
        reminder.earlier_record_key,
        reminder.earlier_event_id,
        reminder.earlier_at,
        reminder.window,
    ) == (HOSPITAL_A, "lab_report:L30", earlier[0].event_id, T0, 7 * DAY)
    names = dict(CBC)
    assert reminder.repeats == tuple(
        Repeat(code, names[code], HOSPITAL_A, "lab_report:L30", earlier[0].event_id, T0) for code in sorted(names)
    )
    # The id does not depend on the items: the same report with fewer repeats is the same reminder.
    assert reminder_id(HOSPITAL_B, "lab_report:L31", OrderKind.LAB_ITEM, "WBC") == reminder.reminder_id


def test_a_report_sharing_only_2_items_with_the_earlier_one_lists_those_2() -> None:
    earlier = lab_orders(HOSPITAL_A, "L40", T0)
    later = lab_orders(
        HOSPITAL_B, "L41", T0 + DAY, [("CRP", "C反应蛋白"), ("WBC", "白细胞计数"), ("NEUT%", "中性粒细胞")]
    )
    reminder = only_reminder(reminders_for(later, earlier, WINDOWS))
    assert reminder.item == "NEUT%,WBC" and reminder.item_name == "中性粒细胞、白细胞计数"
    assert [r.item for r in reminder.repeats] == ["NEUT%", "WBC"]
    assert {r.earlier_record_key for r in reminder.repeats} == {"lab_report:L40"}


def test_a_grouped_reminder_names_each_items_own_earlier_order_and_heads_with_the_most_recent() -> None:
    older = lab_orders(HOSPITAL_A, "L50", T0, [("WBC", "白细胞计数"), ("HGB", "血红蛋白")])
    recent = lab_orders(CLINIC_C, "L51", T0 + DAY, [("HGB", "血红蛋白")])
    same_place = lab_orders(HOSPITAL_B, "L52", T0 + 2 * DAY, [("PLT", "血小板计数")])  # its own follow-up: no
    later = lab_orders(HOSPITAL_B, "L53", T0 + 3 * DAY)
    reminder = only_reminder(reminders_for(later, older + recent + same_place, WINDOWS))
    assert [(r.item, r.earlier_org_code, r.earlier_record_key, r.earlier_at) for r in reminder.repeats] == [
        ("HGB", CLINIC_C, "lab_report:L51", T0 + DAY),
        ("WBC", HOSPITAL_A, "lab_report:L50", T0),
    ]
    assert (reminder.item, reminder.earlier_org_code, reminder.earlier_record_key, reminder.earlier_at) == (
        "HGB,WBC",
        CLINIC_C,
        "lab_report:L51",
        T0 + DAY,
    )
    value = reminder_value(reminder)
    assert CLINIC_C in value["message_zh"] and HOSPITAL_A in value["message_zh"] and "共2项" in value["message_zh"]
    assert value["message_en"].startswith("The same 2 lab test items")


def test_a_lab_report_repeating_nothing_raises_nothing_and_other_kinds_stay_per_item() -> None:
    assert reminders_for(lab_orders(HOSPITAL_B, "L61", T0 + 8 * DAY), lab_orders(HOSPITAL_A, "L60", T0), WINDOWS) == []
    assert reminders_for(lab_orders(HOSPITAL_A, "L62", T0 + DAY), lab_orders(HOSPITAL_A, "L60", T0), WINDOWS) == []
    earlier = orders_of("prescription", prescription(HOSPITAL_A, "CF60", T0, [VALSARTAN, AMLODIPINE]))
    later = orders_of("prescription", prescription(HOSPITAL_B, "CF61", T0 + DAY, [IRBESARTAN, AMLODIPINE]))
    reminders = reminders_for(later, earlier, WINDOWS)  # two classes, two risks: two reminders
    assert [(r.item, len(r.repeats)) for r in reminders] == [("C08C", 1), ("C09C", 1)]
    assert len({r.reminder_id for r in reminders}) == 2
    with pytest.raises(ValueError):
        reminder_for(later, earlier, WINDOWS)  # orders of two reminders
    assert reminder_for([], earlier, WINDOWS) is None


def only_reminder(reminders: list[Reminder]) -> Reminder:
    assert len(reminders) == 1, reminders
    return reminders[0]


def test_a_chinese_patent_medicine_without_atc_never_reminds() -> None:
    first = orders_of("prescription", prescription(HOSPITAL_A, "CF90", T0, [LIANHUA]))
    second = orders_of("prescription", prescription(HOSPITAL_B, "CF91", T0 + DAY, [LIANHUA]))
    assert first == second == []


def test_a_cancelled_event_orders_nothing_so_it_reminds_of_nothing() -> None:
    earlier = drug_order(HOSPITAL_A, "CF95", T0)
    cancelled = orders_of("prescription", prescription(HOSPITAL_B, "CF96", T0 + DAY, [VALSARTAN], cancelled=True))
    assert cancelled == [] and all(reminder_for([o], [earlier], WINDOWS) is None for o in cancelled)


def test_the_reminder_id_is_the_ordering_record_kind_and_item_across_replays_and_corrections() -> None:
    earlier = drug_order(HOSPITAL_A, "CF100", T0)
    first = reminder_for([drug_order(HOSPITAL_B, "CF101", T0 + DAY)], [earlier], WINDOWS)
    replay = reminder_for([drug_order(HOSPITAL_B, "CF101", T0 + DAY)], [earlier], WINDOWS)
    corrected = reminder_for([drug_order(HOSPITAL_B, "CF101", T0 + 2 * DAY, version=2)], [earlier], WINDOWS)
    assert first == replay and first.reminder_id == corrected.reminder_id and first.event_id != corrected.event_id


# -- the published value ---------------------------------------------------------------------------------------


def test_the_reminder_value_fits_its_schema_and_carries_no_personal_data() -> None:
    schema = current_schemas()["alerts.clinical_reminder"]
    earlier = drug_order(HOSPITAL_A, "CF110", T0, days=30)
    reminder = reminder_for([drug_order(HOSPITAL_B, "CF111", T0 + 3 * DAY)], [earlier], WINDOWS)
    lab = reminder_for([lab_order(HOSPITAL_B, "L111", T0 + DAY)], [lab_order(HOSPITAL_A, "L110", T0)], WINDOWS)
    for r in (reminder, lab):
        value = reminder_value(r)
        fastavro.validate(value, schema.parsed, raise_errors=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema.parsed, value)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, schema.parsed) == value
        text = " ".join(str(v) for v in value.values())
        assert not any(personal in text for personal in PERSONAL.values())
    value = reminder_value(reminder)
    assert (value["status"], value["kind"], value["item"], value["window_seconds"]) == (
        "ACTIVE",
        "DRUG_CLASS",
        "C09C",
        30 * 86400,
    )
    assert (
        "2025-03-03" in value["message_zh"] and HOSPITAL_A in value["message_zh"] and "重复用药" in value["message_zh"]
    )
    assert reminder_value(replace(reminder, status=ReminderStatus.WITHDRAWN))["status"] == "WITHDRAWN"
    assert "互认" in reminder_value(lab)["message_zh"] and reminder_value(lab)["kind"] == "LAB_ITEM"
    assert [r["item"] for r in value["repeats"]] == ["C09C"] and reminder_value(lab)["repeats"][0]["item"] == "HBA1C"
    cbc = only_reminder(
        reminders_for(lab_orders(HOSPITAL_B, "L113", T0 + DAY), lab_orders(HOSPITAL_A, "L112", T0), WINDOWS)
    )
    value = reminder_value(cbc)
    fastavro.validate(value, schema.parsed, raise_errors=True)
    assert value["item"] == "HGB,LYMPH%,NEUT%,PLT,RBC,WBC" and len(value["repeats"]) == 6
    assert value["earlier_record_key"] == "lab_report:L112" and "共6项" in value["message_zh"]
    assert not any(personal in value["message_zh"] + value["message_en"] for personal in PERSONAL.values())
    # A reader of the schema before ``repeats`` still reads a grouped reminder; an older writer's is read as [].
    old = json.loads(schema.standalone_json)
    old["fields"] = [f for f in old["fields"] if f["name"] != "repeats"]
    old_schema = fastavro.parse_schema(old)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, value)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema.parsed, old_schema)["item"] == value["item"]
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, old_schema, {k: v for k, v in value.items() if k != "repeats"})
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, old_schema, schema.parsed)["repeats"] == []
