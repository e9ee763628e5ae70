"""One hospital's exchange database content: patients, outpatient and emergency visits with what was
ordered for them, inpatient stays (admission, discharge, procedures, deaths), deliveries and vaccinations.

Generation happens in phases across all hospitals: ``plan_deliveries``, then ``plan_stays`` (so every stay
and in-hospital death is known before anyone's visits are drawn), then ``build``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass

from synthetic.clinical import (
    BY_KEY,
    CONDITION_DX,
    Complaint,
    Presentation,
    department_for,
    pick_dx,
    render_complaint,
    secondary_dx,
)
from synthetic.identity_noise import record_id, record_name
from synthetic.institutions import CITY_DISTRICTS, Institution
from synthetic.orders import DRUG_INDEX, DRUGS, LAB_PANELS, PROCEDURES, exam_report, lab_items
from synthetic.population import Person
from synthetic.public_health import (
    CHAIN_FOR_PRESENTATION,
    DEATH_CHAINS,
    RABIES_DAYS,
    VACCINES,
    batch_no,
    home_death_chain,
)
from synthetic.records import PARENT_TABLES, Row, children, upload_delay
from synthetic.seeding import derive_rng, poisson
from synthetic.timeline import CST, Window
from synthetic.world import Birth, Death, WaveCase, World

WEEKDAY_VISITS = (1.25, 1.10, 1.00, 1.00, 0.95, 0.70, 0.60)  # Monday .. Sunday
WEEKDAY_ADMISSIONS = (1.15, 1.10, 1.05, 1.00, 1.00, 0.80, 0.75)
ADMISSIONS_PER_VISIT = 0.085
PRE_WINDOW_DAYS = 20  # stays that began before the window still produce discharges, labs and deaths in it
DUPLICATE_REGISTRATION_SHARE = 0.004  # per encounter of a known patient: registered again under a new id
# Local patient-id styles: every HIS numbers its patients its own way.
_ID_STYLES = ("{n:010d}", "P{n:08d}", "{n:09d}", "H{n:08d}", "MZ{n:08d}", "{n:012d}")
_PROCEDURE_COST = {
    "ptca": 18000.0,
    "stent": 22000.0,
    "coronary_angiography": 6000.0,
    "hip_replacement": 42000.0,
    "hemiarthroplasty": 30000.0,
    "chemo": 6000.0,
    "appendectomy": 7000.0,
    "cholecystectomy": 9000.0,
    "caesarean": 5000.0,
    "gastrectomy": 35000.0,
    "orif_radius": 12000.0,
    "thrombolysis": 9000.0,
}
_DISCHARGE_METHODS = (("1", 90.0), ("2", 3.0), ("3", 1.5), ("4", 4.5), ("9", 1.0))


@dataclass(slots=True)
class Stay:
    person: Person
    presentation: Presentation
    admitted_at: dt.datetime
    discharged_at: dt.datetime
    died_at: dt.datetime | None
    emergency: bool
    birth: Birth | None = None


@dataclass(frozen=True, slots=True)
class WaveVisit:
    schema: str
    visit_id: str
    wave: str
    region_code: str
    day: int


class HospitalRecords:
    def __init__(self, world: World, institution: Institution) -> None:
        self.world = world
        self.inst = institution
        self.window: Window = world.window
        self.rng = derive_rng(world.seed, "hospital", institution.org_code)
        self.tables: dict[str, list[Row]] = {t: [] for t in PARENT_TABLES["hospital"]}
        self.noise: Counter[str] = Counter()
        self.stays: list[Stay] = []
        self.wave_visits: list[WaveVisit] = []
        self._patients: dict[int, Row] = {}  # pid -> first patient row
        self._duplicated: set[int] = set()  # membership only
        self._patient_serial = itertools.count(self.rng.randrange(100_000, 900_000))
        self._id_style = _ID_STYLES[institution.index % len(_ID_STYLES)]
        self._serial = itertools.count(1)
        self._structured_symptoms = 0.6 if institution.is_city_level else 0.25
        self._temperature_share = 0.75 if institution.is_city_level else 0.55
        self._short_address = institution.index % 3 == 1  # this HIS drops the province/city prefix
        self._outpatient_cum, self._inpatient_cum = self._catchment()

    # --- who comes to this hospital ------------------------------------------------------------------------
    def _catchment(self) -> tuple[list[float], list[float]]:
        """Cumulative weights over all people: a county hospital draws 88% of patients from its county, the
        city hospital 45% from the city districts; maternal and child hospitals see women and children."""
        people = self.world.people
        day = self.window.start
        local_share = 0.45 if self.inst.is_city_level else 0.88
        out: list[float] = []
        inp: list[float] = []
        local_in = [
            r in CITY_DISTRICTS if self.inst.is_city_level else r == self.inst.region_code
            for r in (p.region_code for p in people)
        ]
        for p in people:
            group = p.age_group(day) if p.birth_date <= day else 0
            w_out = (2.5, 0.8, 0.8, 1.8)[group]
            w_in = (1.5, 0.5, 1.0, 3.5)[group]
            if p.conditions:
                w_out *= 1.5
                w_in *= 1.5
            if any(c.startswith("CA_") for c in p.conditions):
                w_in *= 8.0  # chemotherapy cycles bring cancer patients back every few weeks
            if self.inst.hospital_type == "mch":
                factor = 3.0 if group == 0 or (p.sex == "2" and 18 <= p.age_on(day) <= 45) else 0.05
                w_out *= factor
                w_in *= factor
            elif self.inst.hospital_type == "tcm":
                w_out *= (0.5, 0.7, 1.0, 1.5)[group]
            out.append(w_out)
            inp.append(w_in)
        for weights in (out, inp):
            own = sum(w for w, loc in zip(weights, local_in) if loc) or 1.0
            other = sum(w for w, loc in zip(weights, local_in) if not loc) or 1.0
            scale_other = (1 - local_share) / local_share * own / other
            for i, loc in enumerate(local_in):
                if not loc:
                    weights[i] *= scale_other
        return list(itertools.accumulate(out)), list(itertools.accumulate(inp))

    def _pick(self, cum: list[float], moment: dt.datetime, *, for_stay: bool = False) -> Person | None:
        people = self.world.people
        day = moment.astimezone(CST).date()
        for _ in range(25):
            p = people[bisect.bisect_right(cum, self.rng.random() * cum[-1])]
            if p.birth_date >= day or not p.alive_at(moment) or p.in_hospital_at(moment):
                continue
            if for_stay and p.death_planned:
                continue
            return p
        return None

    # --- phase 1: inpatient stays ----------------------------------------------------------------------------
    def plan_deliveries(self) -> None:
        """The mothers' stays (call for every hospital before any ``plan_stays``: they are fixed by the births)."""
        for birth in self.world.births:
            if birth.hospital == self.inst.index:
                self._plan_delivery(birth)

    def plan_stays(self) -> None:
        rng, window = self.rng, self.window
        for day in range(-PRE_WINDOW_DAYS, window.days):
            weekday = window.date(day).weekday()
            for _ in range(poisson(rng, self.inst.daily_visits * ADMISSIONS_PER_VISIT * WEEKDAY_ADMISSIONS[weekday])):
                emergency = rng.random() < 0.35
                second = window.any_second(rng, 1) if emergency else window.clinic_second(rng)
                if day == 0 and second < window.earliest_second(0):
                    continue
                admitted = window.at(day, second)
                person = self._pick(self._inpatient_cum, admitted, for_stay=True)
                if person is None:
                    continue
                p = self.world.casemix.inpatient(rng, person, window.date(day))
                los_days = rng.randint(*p.los)
                out_day = (admitted.astimezone(CST).date() - window.start).days + los_days
                discharged = window.at(out_day, rng.randint(9 * 3600, 11 * 3600 + 1800))
                if discharged < window.start_utc:
                    continue
                gap = dt.timedelta(days=1)  # no back-to-back stays: the visit before admission must fit between
                if any(a - gap < discharged and admitted < b + gap for a, b in person.stays):
                    continue
                died_at = None
                mortality = p.mortality * (1.0 if person.age_on(window.date(day)) >= 60 else 0.4)
                if any(a > admitted for a, _ in person.stays):
                    mortality = 0.0  # already admitted somewhere later on: survives this stay
                if rng.random() < mortality:
                    died_at = admitted + (discharged - admitted) * rng.uniform(0.15, 1.0)
                    died_at = died_at.replace(microsecond=0)
                    if died_at < window.start_utc:
                        died_at = None
                    else:
                        discharged = died_at
                        person.died_at = died_at
                        person.death_planned = True
                person.stays.append((admitted, discharged))
                self.stays.append(Stay(person, p, admitted, discharged, died_at, emergency))

    def _plan_delivery(self, birth: Birth) -> None:
        mother = birth.mother
        admitted = birth.born_at - dt.timedelta(minutes=self.rng.randint(120, 14 * 60))
        days = self.rng.randint(4, 6) if birth.caesarean else self.rng.randint(2, 4)
        out_day = (birth.born_at.astimezone(CST).date() - self.window.start).days + days
        discharged = self.window.at(out_day, self.rng.randint(9 * 3600, 11 * 3600 + 1800))
        if any(a <= birth.born_at < b for a, b in mother.stays):
            return  # twins: one stay for the mother
        mother.stays.append((admitted, discharged))
        self.stays.append(Stay(mother, BY_KEY["delivery"], admitted, discharged, None, False, birth))

    # --- phase 2: the records ----------------------------------------------------------------------------------
    def build(self) -> None:
        rng, window = self.rng, self.window
        for day in range(window.days):
            date = window.date(day)
            volume = round(self.inst.daily_visits * WEEKDAY_VISITS[date.weekday()] * rng.gauss(1.0, 0.06))
            for _ in range(volume):
                self._background_visit(day)
        for case in self.world.wave_cases:
            if case.hospital == self.inst.index:
                self._wave_visit(case)
        for stay in self.stays:
            self._stay_records(stay)

    def _serial_id(self, prefix: str = "") -> str:
        return f"{prefix}{self.inst.index + 1:02d}{next(self._serial):08d}"

    def _background_visit(self, day: int) -> None:
        rng, window = self.rng, self.window
        emergency_roll = rng.random()
        second = window.clinic_second(rng)
        moment = window.at(day, second)
        person = self._pick(self._outpatient_cum, moment)
        if person is None:
            return
        p = self.world.casemix.outpatient(rng, person, window.date(day))
        emergency = emergency_roll < p.emergency_share
        if emergency:
            moment = window.at(day, window.any_second(rng, day))
            if not person.alive_at(moment) or person.in_hospital_at(moment):
                return
        self._visit(person, p, moment, emergency)

    def _wave_visit(self, case: WaveCase) -> None:
        moment = self.window.at(case.day, case.second)
        person = case.person
        if (
            not person.alive_at(moment)
            or person.in_hospital_at(moment)
            or person.birth_date >= self.window.date(case.day)
        ):
            return
        p = BY_KEY[case.presentation]
        febrile = True if case.wave.name == "influenza" else None
        exposure = case.wave.exposure if self.rng.random() < 0.6 else None
        hour = moment.astimezone(CST).hour
        visit = self._visit(
            person,
            p,
            moment,
            emergency=hour < 8 or hour >= 18,
            febrile=febrile,
            exposure=exposure,
            lab_profile=case.wave.lab_profile,
            extra_panel=case.wave.lab_panel,
        )
        self.wave_visits.append(
            WaveVisit(self.inst.schema, visit["visit_id"], case.wave.name, person.region_code, case.day)
        )

    # --- patients ----------------------------------------------------------------------------------------------
    def patient_id(self, person: Person, moment: dt.datetime) -> str:
        """The local id of ``person``, registering them on first contact (sometimes a second time)."""
        row = self._patients.get(person.pid)
        if row is None:
            row = self._new_patient(person, moment)
            self._patients[person.pid] = row
            return row["patient_id"]
        row["_first"] = min(row["_first"], moment)
        row["_last"] = max(row["_last"], moment)
        if person.pid not in self._duplicated and self.rng.random() < DUPLICATE_REGISTRATION_SHARE:
            self._duplicated.add(person.pid)  # registered again at another desk: new id, often no ID number
            self.noise["duplicate_registration"] += 1
            duplicate = self._new_patient(person, moment, duplicate=True)
            return duplicate["patient_id"]
        return row["patient_id"]

    def unused_patient_id(self) -> str:
        return self._id_style.format(n=next(self._patient_serial))

    def has_patient(self, person: Person) -> bool:
        return person.pid in self._patients

    # The defect injectors' view (defects.Source).
    reference_id = patient_id
    unused_reference_id = unused_patient_id
    knows = has_patient

    def _new_patient(self, person: Person, moment: dt.datetime, duplicate: bool = False) -> Row:
        rng = self.rng
        day = moment.astimezone(CST).date()
        id_type, id_number = record_id(person, rng, day, self.noise)
        if duplicate and rng.random() < 0.6:
            id_type = id_number = None
        typed = person.stays or rng.random() < 0.15
        address = person.address
        if self._short_address and address.startswith("河南省信阳市"):
            address = address[len("河南省信阳市") :]
        row: Row = {
            "patient_id": self.unused_patient_id(),
            "name": record_name(person, rng, self.noise),
            "sex": person.sex,
            "birth_date": person.birth_date,
            "id_type": id_type,
            "id_number": id_number,
            "health_card": person.health_card if rng.random() < 0.8 else None,
            "insurance_card": person.insurance_card if rng.random() < 0.9 else None,
            "phone": person.phone if rng.random() < 0.93 else None,
            "address": address if rng.random() < 0.9 else None,
            "residence_region_code": person.region_code if rng.random() < 0.85 else None,
            "occupation": person.occupation if rng.random() < 0.6 else None,
            "ethnicity": person.ethnicity if rng.random() < 0.7 else None,
            "marital_status": person.marital_status if rng.random() < 0.6 else None,
            "abo_blood_type": person.abo if typed else ("5" if rng.random() < 0.3 else None),
            "rh_blood_type": person.rh if typed else ("3" if rng.random() < 0.3 else None),
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_first": moment,
            "_last": moment,
            "_duplicate": duplicate,
        }
        self._history(row, person, moment)
        self.tables["patient"].append(row)
        return row

    def _history(self, row: Row, person: Person, moment: dt.datetime) -> None:
        rng = self.rng
        items: list[tuple[str, str | None, str]] = []
        if rng.random() < 0.06:
            items.append(("ALLERGY", None, rng.choice(("青霉素过敏", "头孢类过敏", "磺胺类过敏", "海鲜过敏"))))
        for key in person.conditions:
            if key in CONDITION_DX and key != "PREG" and rng.random() < 0.5:
                items.append(("DISEASE", *CONDITION_DX[key]))
        if person.age_on(self.window.start) > 30 and rng.random() < 0.05:
            operations = [("47.09", "阑尾切除术"), ("51.22", "胆囊切除术")] + (
                [("74.1", "剖宫产术")] if person.sex == "2" else []
            )
            items.append(("OPERATION", *rng.choice(operations)))
        if rng.random() < 0.1:
            items.append(
                ("FAMILY", *rng.choice((("I10", "父亲患高血压"), ("E11", "母亲患糖尿病"), ("C16", "父亲因胃癌去世"))))
            )
        for seq, (kind, code, text) in enumerate(items, 1):
            children(row, "patient_history").append(
                {"seq": seq, "kind": kind, "code": code, "description": text, "recorded_at": moment}
            )

    def finish_patients(self) -> None:
        """Registration times and later updates of the patient rows (call after every reference is made)."""
        rng, window = self.rng, self.window
        for row in self.tables["patient"]:
            registered = max(window.start_utc, row["_first"] - dt.timedelta(minutes=rng.randint(2, 40)))
            row["updated_at"] = registered
            row["_event"] = registered
            for item in row.get("_children", {}).get("patient_history", []):
                item["recorded_at"] = registered
            if row["_duplicate"] and rng.random() < 0.3:
                # the master patient index caught the duplicate and withdrew it (its visits keep pointing at it)
                row["cancelled"] = True
                row["record_version"] = 2
                row["updated_at"] = registered + dt.timedelta(minutes=rng.randint(30, 600))
            elif row["_last"] > row["_first"] + dt.timedelta(hours=2) and rng.random() < 0.25:
                # details updated at a later encounter (new phone, address): a corrected row
                row["record_version"] = 2
                row["updated_at"] = row["_last"] - dt.timedelta(minutes=rng.randint(1, 20))
                row["_event"] = row["updated_at"]

    # --- outpatient and emergency visits ------------------------------------------------------------------------
    def _visit(
        self,
        person: Person,
        p: Presentation,
        moment: dt.datetime,
        emergency: bool,
        *,
        febrile: bool | None = None,
        exposure: str | None = None,
        lab_profile: str | None = None,
        extra_panel: str | None = None,
    ) -> Row:
        rng = self.rng
        day = moment.astimezone(CST).date()
        complaint = render_complaint(p, rng, febrile=febrile)
        dept_code, dept_name = department_for(p, person, day, emergency)
        serial = next(self._serial)
        visit_id = f"{self.inst.index + 1:02d}{serial:09d}"
        visit_no = f"MZ{day:%y%m%d}{serial:06d}"
        temperature = self._temperature(complaint, dept_name, emergency)
        if exposure is None and p.exposure and rng.random() < 0.35:
            exposure = rng.choice(p.exposure)
        elif exposure is None and dept_name in ("发热门诊", "感染性疾病科") and rng.random() < 0.4:
            exposure = "无明确流行病学史"
        row: Row = {
            "visit_id": visit_id,
            "patient_id": self.patient_id(person, moment),
            "visit_no": visit_no,
            "visit_type": "2" if emergency else "1",
            "visit_at": moment,
            "department_code": dept_code,
            "department_name": dept_name,
            "chief_complaint": complaint.text,
            "temperature_c": temperature,
            "exposure_history": exposure,
            "updated_at": moment + upload_delay(rng, "realtime"),
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_event": moment,
        }
        code, name = pick_dx(p, rng)
        diagnoses = [(code, name)] + secondary_dx(person, code, rng, day, share=0.3)
        for seq, (c, n) in enumerate(diagnoses, 1):
            children(row, "outpatient_diagnosis").append({"seq": seq, "code": c, "name": n, "is_primary": seq == 1})
        if complaint.symptoms and rng.random() < self._structured_symptoms:
            for seq, symptom in enumerate(complaint.symptoms, 1):
                children(row, "outpatient_symptom").append({"seq": seq, "symptom": symptom})
        self.tables["outpatient_visit"].append(row)
        self._orders(person, p, moment, dept_name, visit_no, lab_profile or p.lab_profile, extra_panel)
        if p.key == "dog_bite" and rng.random() < 0.85:
            for dose, offset in enumerate(RABIES_DAYS, 1):
                at = moment + dt.timedelta(days=offset, minutes=rng.randint(10, 40) if offset == 0 else 0)
                if offset:
                    at = self.window.at(
                        (at.astimezone(CST).date() - self.window.start).days, self.window.clinic_second(rng)
                    )
                if self.window.contains(at) and person.alive_at(at):
                    self._vaccination(person, "Rabies", dose, at)
        return row

    def _temperature(self, complaint: Complaint, dept_name: str, emergency: bool) -> float | None:
        rng = self.rng
        if complaint.febrile:
            if rng.random() < 0.9:
                return round(complaint.temperature - rng.choice((0.0, 0.0, 0.0, 0.1, 0.3)), 1)  # type: ignore[operator]
            return None
        share = 0.92 if dept_name in ("发热门诊", "儿科", "急诊医学科") or emergency else self._temperature_share
        return round(rng.uniform(36.1, 37.1), 1) if rng.random() < share else None

    def _orders(
        self,
        person: Person,
        p: Presentation,
        moment: dt.datetime,
        dept_name: str,
        visit_no: str,
        profile: str,
        extra_panel: str | None,
    ) -> None:
        rng = self.rng
        drugs = [k for k, prob in p.drugs if rng.random() < prob]
        if drugs:
            self._prescription(person, moment + dt.timedelta(minutes=rng.randint(5, 40)), dept_name, visit_no, drugs)
        panels = [k for k, prob in p.labs if rng.random() < prob]
        if extra_panel and extra_panel not in panels and rng.random() < 0.6:
            panels.append(extra_panel)
        for panel in panels:
            self._lab(person, moment + dt.timedelta(minutes=rng.randint(10, 40)), dept_name, panel, profile)
        for exam, prob in p.exams:
            if rng.random() < prob:
                self._exam(person, moment + dt.timedelta(minutes=rng.randint(30, 240)), exam, p.finding)

    def _prescription(
        self, person: Person, moment: dt.datetime, dept_name: str, visit_no: str | None, drugs: list[str]
    ) -> None:
        if not self.window.contains(moment) or not person.alive_at(moment):
            return
        rng = self.rng
        pid = self._serial_id()
        row: Row = {
            "prescription_id": pid,
            "patient_id": self.patient_id(person, moment),
            "prescription_no": f"CF{pid}",
            "visit_no": visit_no,
            "prescribed_at": moment,
            "department_name": dept_name,
            "updated_at": moment + upload_delay(rng, "realtime"),
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_event": moment,
        }
        child = person.age_on(moment.astimezone(CST).date()) < 12
        for seq, key in enumerate(drugs, 1):
            d = DRUGS[key]
            days = rng.randint(*d.days)
            dose = d.dose / 2 if child and d.unit in ("g", "mg") else d.dose
            children(row, "prescription_item").append(
                {
                    "seq": seq,
                    "drug_code": f"{'YXZ'[self.inst.index % 3]}{self.inst.index % 7}{DRUG_INDEX[key]:05d}",
                    "drug_name": d.name,
                    "atc_code": d.atc,
                    "dose": dose,
                    "dose_unit": d.unit,
                    "frequency": d.frequency,
                    "route": d.route,
                    "days": days,
                    "quantity": float(round(d.per_day * days)),
                }
            )
        self.tables["prescription"].append(row)

    def _lab(self, person: Person, collected: dt.datetime, dept_name: str, panel: str, profile: str) -> None:
        rng = self.rng
        reported = collected + dt.timedelta(minutes=rng.randint(25, 150))
        if not self.window.contains(reported) or not person.alive_at(reported):
            return
        title, specimen, _ = LAB_PANELS[panel]
        rid = self._serial_id("L")
        row: Row = {
            "report_id": rid,
            "patient_id": self.patient_id(person, collected),
            "report_no": f"{rid[1:]}",
            "specimen_type": specimen,
            "collected_at": collected,
            "reported_at": reported,
            "department_name": dept_name,
            "updated_at": reported + upload_delay(rng, "realtime"),
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_event": reported,
            "_title": title,
        }
        row["_children"] = {"lab_item": lab_items(panel, profile, person, rng)}
        self.tables["lab_report"].append(row)

    def _exam(self, person: Person, reported: dt.datetime, exam: str, finding: str) -> None:
        if not self.window.contains(reported) or not person.alive_at(reported):
            return
        rng = self.rng
        modality, code, name, body, findings, impression = exam_report(exam, finding, rng)
        rid = self._serial_id("E")
        self.tables["exam_report"].append(
            {
                "report_id": rid,
                "patient_id": self.patient_id(person, reported),
                "report_no": f"{modality}{rid[1:]}",
                "modality": modality,
                "exam_item_code": code,
                "exam_item_name": name,
                "body_part": body,
                "findings": findings,
                "impression": impression,
                "reported_at": reported,
                "updated_at": reported + upload_delay(rng, "realtime"),
                "record_version": 1,
                "cancelled": False,
                "_person": person,
                "_event": reported,
            }
        )

    def _vaccination(self, person: Person, vaccine: str, dose: int, at: dt.datetime) -> None:
        rng = self.rng
        v = VACCINES[vaccine]
        vid = self._serial_id("V")
        self.tables["vaccination"].append(
            {
                "vaccination_id": vid,
                "patient_id": self.patient_id(person, at),
                "vaccination_no": f"JZ{vid[1:]}",
                "vaccine_code": v.code,
                "vaccine_name": v.name,
                "dose_number": dose,
                "batch_no": batch_no(vaccine, at.astimezone(CST).date(), self.inst.index),
                "manufacturer": v.manufacturers[self.inst.index % len(v.manufacturers)],
                "administered_at": at,
                "site": v.site,
                "route": v.route,
                "updated_at": at + upload_delay(rng, "realtime"),
                "record_version": 1,
                "cancelled": False,
                "_person": person,
                "_event": at,
            }
        )

    # --- inpatient stays -----------------------------------------------------------------------------------------
    def _stay_records(self, stay: Stay) -> None:
        rng, window = self.rng, self.window
        person, p = stay.person, stay.presentation
        day = stay.admitted_at.astimezone(CST).date()
        if stay.birth is not None:
            code, name = ("O82.000", "经选择性剖宫产术的分娩") if stay.birth.caesarean else ("O80.000", "单胎顺产")
        else:
            code, name = pick_dx(p, rng)
        diagnoses = [(code, name)] + secondary_dx(person, code, rng, day, share=0.7)
        dept_code, dept_name = department_for(p, person, day, emergency=False)
        if dept_name == "发热门诊":
            dept_code, dept_name = "1600", "感染性疾病科"
        serial = next(self._serial)
        admission_id = f"{self.inst.index + 1:02d}{serial:09d}"
        admission_no = f"{day:%y}{serial:07d}"
        ward = f"{dept_name}{rng.randint(1, 3)}病区"
        if window.contains(stay.admitted_at):
            if stay.birth is None:  # the visit that led to the admission
                before = stay.admitted_at - dt.timedelta(minutes=rng.randint(30, 180))
                if window.contains(before):
                    self._visit(person, p, before, stay.emergency)
            route = "1" if stay.emergency else rng.choices("239", (95, 4, 1))[0]
            row: Row = {
                "admission_id": admission_id,
                "patient_id": self.patient_id(person, stay.admitted_at),
                "admission_no": admission_no,
                "admitted_at": stay.admitted_at,
                "department_code": dept_code,
                "department_name": dept_name,
                "ward": ward,
                "admission_route": route,
                "updated_at": stay.admitted_at + upload_delay(rng, "realtime"),
                "record_version": 1,
                "cancelled": False,
                "_person": person,
                "_event": stay.admitted_at,
            }
            for seq, (c, n) in enumerate(diagnoses, 1):
                children(row, "inpatient_admission_diagnosis").append(
                    {"seq": seq, "code": c, "name": n, "is_primary": seq == 1}
                )
            self.tables["inpatient_admission"].append(row)
        # Labs and exams on admission, then a repeat panel every few days of the stay.
        first = stay.admitted_at + dt.timedelta(minutes=rng.randint(40, 180))
        for panel, prob in p.labs:
            if rng.random() < max(prob, 0.5):
                self._lab(person, first, dept_name, panel, p.lab_profile)
        for exam, prob in p.exams:
            if rng.random() < prob:
                self._exam(person, first + dt.timedelta(minutes=rng.randint(30, 300)), exam, p.finding)
        check = stay.admitted_at + dt.timedelta(days=3)
        while check < stay.discharged_at - dt.timedelta(hours=12):
            if rng.random() < 0.6:  # the ward's early-morning draw (06:00-07:00 local = 22:00-23:00 UTC)
                draw = check.replace(hour=22, minute=rng.randint(0, 59)) - dt.timedelta(days=1)
                if draw > stay.admitted_at:
                    self._lab(person, draw, dept_name, "cbc", p.lab_profile)
            check += dt.timedelta(days=3)
        if stay.birth is not None:
            self._newborn_vaccines(stay.birth)
        if window.contains(stay.discharged_at):
            self._discharge(stay, admission_id, admission_no, dept_code, dept_name, diagnoses)

    def _discharge(
        self,
        stay: Stay,
        admission_id: str,
        admission_no: str,
        dept_code: str,
        dept_name: str,
        diagnoses: list[tuple[str, str]],
    ) -> None:
        rng = self.rng
        person, p = stay.person, stay.presentation
        method = (
            "5"
            if stay.died_at
            else rng.choices([m for m, _ in _DISCHARGE_METHODS], [w for _, w in _DISCHARGE_METHODS])[0]
        )
        days = max(1, (stay.discharged_at - stay.admitted_at).days)
        procedures = [k for k, prob in p.procedures if rng.random() < prob]
        if stay.birth is not None:
            procedures = (
                ["caesarean"]
                if stay.birth.caesarean
                else rng.choices((["assisted_vaginal"], ["episiotomy"], []), (20, 35, 45))[0]
            )
        if stay.died_at:
            procedures += ["intubation", "cpr"]
        cost = 1200 + days * rng.uniform(700, 1500) + sum(_PROCEDURE_COST.get(k, 800) for k in procedures)
        row: Row = {
            "admission_id": admission_id,
            "patient_id": self.patient_id(person, stay.discharged_at),
            "admission_no": admission_no,
            "admitted_at": stay.admitted_at,
            "discharged_at": stay.discharged_at,
            "department_code": dept_code,
            "department_name": dept_name,
            "discharge_method": method,
            "died_at": stay.died_at,
            "total_cost": round(cost, 2),
            "updated_at": stay.discharged_at + upload_delay(rng, "summary"),
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_event": stay.discharged_at,
        }
        for seq, (c, n) in enumerate(diagnoses, 1):
            children(row, "inpatient_discharge_diagnosis").append(
                {"seq": seq, "code": c, "name": n, "is_primary": seq == 1}
            )
        span = max(1.0, (stay.discharged_at - stay.admitted_at).total_seconds() / 2)
        for seq, key in enumerate(dict.fromkeys(procedures), 1):
            code, name = PROCEDURES[key]
            if key in ("intubation", "cpr") and stay.died_at:
                at = stay.died_at - dt.timedelta(
                    minutes=rng.randint(15, 120) if key == "intubation" else rng.randint(1, 14)
                )
            elif stay.birth is not None:
                at = stay.birth.born_at - dt.timedelta(minutes=rng.randint(5, 50))
            else:
                at = stay.admitted_at + dt.timedelta(seconds=rng.uniform(3600, span))
            children(row, "inpatient_procedure").append(
                {
                    "seq": seq,
                    "code": code,
                    "name": name,
                    "performed_at": at.replace(microsecond=0),
                    "is_primary": seq == 1,
                }
            )
        self.tables["inpatient_discharge"].append(row)
        if stay.died_at:
            self._death(stay)

    def _death(self, stay: Stay) -> None:
        rng = self.rng
        person = stay.person
        died_at = stay.died_at
        assert died_at is not None
        chain = CHAIN_FOR_PRESENTATION.get(stay.presentation.key) or home_death_chain(
            person, rng, died_at.astimezone(CST).date()
        )
        lines, (u_code, u_name) = DEATH_CHAINS[chain]
        serial = next(self._serial)
        certificate = f"{self.inst.region_code}{died_at.year}{self.inst.index % 8 + 1}{serial % 10000:04d}"
        row: Row = {
            "death_id": f"SW{self.inst.index + 1:02d}{serial:08d}",
            "patient_id": self.patient_id(person, died_at),
            "certificate_no": certificate,
            "died_at": died_at,
            "death_place": "1",
            "underlying_cause_code": u_code,
            "underlying_cause_name": u_name,
            "updated_at": died_at + upload_delay(rng, "death"),
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_event": died_at,
            "_limit": dt.timedelta(days=6),
        }
        row["_children"] = {
            "death_cause": [
                {"line": line, "code": code, "description": text, "interval": interval or None}
                for line, code, text, interval in lines
            ]
        }
        self.tables["death_record"].append(row)
        self.world.hospital_deaths.append(Death(person, died_at, "1", chain, certificate, self.inst.index))

    def _newborn_vaccines(self, birth: Birth) -> None:
        for vaccine, at in birth.vaccines:
            if self.window.contains(at):
                self._vaccination(birth.child, vaccine, 1, at)
