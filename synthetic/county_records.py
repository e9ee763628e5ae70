"""One county public-health platform's exchange database content: resident health records (WS 365),
hypertension and diabetes follow-ups, childhood and elderly vaccinations, birth registrations (with the
at-birth HepB and BCG doses) and death registrations (at home, and in hospital as reported by hospitals).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter

from synthetic.identity_noise import record_id, record_name
from synthetic.institutions import Institution
from synthetic.population import TOWNSHIPS, Person
from synthetic.public_health import (
    CHILD_SCHEDULE,
    DEATH_CHAINS,
    VACCINES,
    ChronicBaseline,
    batch_no,
    chronic_baseline,
)
from synthetic.records import PARENT_TABLES, Row, children, upload_delay
from synthetic.seeding import derive_rng
from synthetic.timeline import CST, Window
from synthetic.world import Death, World

RECORD_COVERAGE = 0.93  # share of residents with a health record before anything happens to them
ELDERLY_FLU_SEASON_UPTAKE = 0.25  # of residents ≥60, over the ~75 days of the autumn campaign
FOLLOWUP_CYCLE_DAYS = {"1": 90, "2": 14, "3": 14, "4": 14}  # next visit: quarterly, or within 2 weeks


class CountyRecords:
    def __init__(self, world: World, institution: Institution) -> None:
        self.world = world
        self.inst = institution
        self.region = institution.region_code
        self.window: Window = world.window
        self.rng = derive_rng(world.seed, "county", self.region)
        self.tables: dict[str, list[Row]] = {t: [] for t in PARENT_TABLES["county"]}
        self.noise: Counter[str] = Counter()
        self._residents: dict[int, Row] = {}
        self._places: dict[tuple[str, str], tuple[int, int]] = {}  # (township, village/road) -> codes
        self._resident_serial: Counter[tuple[int, int]] = Counter()
        self._serial = itertools.count(1)
        # Township vaccination clinics open on fixed weekdays (接种日).
        self._clinic_days = ((0, 2, 4), (1, 3), (0, 1, 2, 3, 4))[institution.index % 3]

    def build(self) -> None:
        window = self.window
        for person in self.world.residents(self.region):
            if (
                person.birth_date < window.start
                and person.alive_at(window.start_utc)
                and self.rng.random() < RECORD_COVERAGE
            ):
                self.resident_id(person, window.start_utc + dt.timedelta(minutes=self.rng.randint(0, 8 * 60)))
        self._followups()
        self._child_vaccinations()
        self._elderly_vaccinations()
        self._births()
        self._deaths()

    # --- resident records ----------------------------------------------------------------------------------
    def _place_codes(self, person: Person) -> tuple[int, int]:
        township = person.township
        rest = person.address.split(township, 1)[-1]
        village = rest.split("村", 1)[0] if "村" in rest else rest.split("路", 1)[0]
        key = (township, village)
        if key not in self._places:
            t_index = TOWNSHIPS[self.region].index(township) + 1 if township in TOWNSHIPS[self.region] else 99
            v_index = sum(1 for k in self._places if k[0] == township) + 1
            self._places[key] = (t_index, v_index)
        return self._places[key]

    def resident_id(self, person: Person, moment: dt.datetime) -> str:
        """WS 365 archive number: region (6) + township (3) + village/community (3) + person (5)."""
        row = self._residents.get(person.pid)
        if row is not None:
            return row["resident_id"]
        rng = self.rng
        t_code, v_code = self._place_codes(person)
        self._resident_serial[(t_code, v_code)] += 1
        resident_id = f"{self.region}{t_code:03d}{v_code:03d}{self._resident_serial[(t_code, v_code)]:05d}"
        id_type, id_number = record_id(person, rng, moment.astimezone(CST).date(), self.noise)
        row = {
            "resident_id": resident_id,
            "name": record_name(person, rng, self.noise),
            "sex": person.sex,
            "birth_date": person.birth_date,
            "id_type": id_type,
            "id_number": id_number,
            "health_card": person.health_card if rng.random() < 0.6 else None,
            "insurance_card": person.insurance_card,
            "phone": person.phone,
            "address": person.address,
            "residence_region_code": self.region,
            "occupation": person.occupation,
            "ethnicity": person.ethnicity,
            "marital_status": person.marital_status,
            "abo_blood_type": person.abo if rng.random() < 0.4 else "5",
            "rh_blood_type": person.rh if rng.random() < 0.4 else "3",
            "updated_at": moment,
            "record_version": 1,
            "cancelled": False,
            "_person": person,
            "_event": moment,
        }
        self._residents[person.pid] = row
        self.tables["resident"].append(row)
        return resident_id

    def knows(self, person: Person) -> bool:
        return person.pid in self._residents

    def unused_reference_id(self) -> str:
        """An archive number no resident row has (the 999 township code is never assigned)."""
        return f"{self.region}999999{next(self._serial) % 100000:05d}"

    reference_id = resident_id

    # --- chronic disease follow-ups -------------------------------------------------------------------------
    def _followups(self) -> None:
        rng, window = self.rng, self.window
        for person in self.world.residents(self.region):
            if not person.managed:
                continue
            for disease in ("HTN", "DM"):
                if disease not in person.conditions:
                    continue
                baseline = chronic_baseline(rng)
                cycle = 90 if baseline.controlled else 30
                offset = rng.uniform(0, cycle)
                while offset < window.days:
                    day = int(offset)
                    date = window.date(day)
                    day += (7 - date.weekday()) % 7 if date.weekday() >= 5 else 0  # no follow-ups at weekends
                    if day < window.days:
                        self._followup(person, disease, baseline, day)
                    offset += cycle

    def _followup(self, person: Person, disease: str, baseline: ChronicBaseline, day: int) -> None:
        rng, window = self.rng, self.window
        method = rng.choices("123", (40, 35, 25))[0]
        moment = window.at(day, window.clinic_second(rng))
        if not person.alive_at(moment) or person.in_hospital_at(moment):
            return
        measured = method != "3" or rng.random() < 0.5  # by phone only home-monitor readings, if any
        systolic = round(baseline.systolic + rng.gauss(0, 6)) if measured else None
        diastolic = round(baseline.diastolic + rng.gauss(0, 4)) if measured else None
        glucose = round(max(3.5, rng.gauss(baseline.glucose, 0.5)), 1) if disease == "DM" and method != "3" else None
        if disease == "HTN":
            controlled = systolic is None or (systolic < 140 and (diastolic or 0) < 90)
        else:
            controlled = glucose is None or glucose < 7.0
        r = rng.random()
        followup_class = "3" if r < 0.03 else "4" if r < 0.08 else ("1" if controlled else "2")
        serial = next(self._serial)
        self.tables["chronic_followup"].append(
            {
                "followup_id": f"{self.region}{serial:010d}",
                "resident_id": self.resident_id(person, moment),
                "followup_no": f"SF{self.region}{serial:08d}",
                "disease_code": "I10" if disease == "HTN" else "E11",
                "followup_at": moment,
                "followup_method": method,
                "systolic_bp": systolic,
                "diastolic_bp": diastolic,
                "fasting_glucose_mmol": glucose,
                "followup_class": followup_class,
                "next_followup_date": window.date(day) + dt.timedelta(days=FOLLOWUP_CYCLE_DAYS[followup_class]),
                "updated_at": moment + upload_delay(rng, "registry"),
                "record_version": 1,
                "cancelled": False,
                "_person": person,
                "_event": moment,
                "_disease": disease,
            }
        )

    # --- vaccinations --------------------------------------------------------------------------------------
    def _clinic_day(self, day: int) -> int:
        while self.window.date(day).weekday() not in self._clinic_days:
            day += 1
        return day

    def _child_vaccinations(self) -> None:
        rng, window = self.rng, self.window
        for person in self.world.residents(self.region):
            if person.birth_date >= window.start or person.age_on(window.start) > 6:
                continue
            for vaccine, dose, age_days in CHILD_SCHEDULE:
                due = (person.birth_date - window.start).days + age_days
                if due < -60 or due >= window.days:
                    continue
                day = self._clinic_day(due + min(45, int(rng.expovariate(1 / 6))))
                if 0 <= day < window.days:
                    self._vaccination(person, vaccine, dose, window.at(day, window.clinic_second(rng)))

    def _elderly_vaccinations(self) -> None:
        rng, window = self.rng, self.window
        if window.start.month not in (9, 10, 11, 12, 1):
            return
        daily = ELDERLY_FLU_SEASON_UPTAKE / 75
        for person in self.world.residents(self.region):
            if person.birth_date >= window.start or person.age_on(window.start) < 60:
                continue
            for day in range(window.days):
                if rng.random() < daily:
                    day = self._clinic_day(day)
                    if day < window.days:
                        self._vaccination(person, "Flu", 1, window.at(day, window.clinic_second(rng)))
                    break

    def _vaccination(self, person: Person, vaccine: str, dose: int, at: dt.datetime) -> None:
        if not person.alive_at(at) or person.in_hospital_at(at):
            return
        rng = self.rng
        v = VACCINES[vaccine]
        serial = next(self._serial)
        self.tables["vaccination"].append(
            {
                "vaccination_id": f"JZ{self.region}{serial:08d}",
                "resident_id": self.resident_id(person, at),
                "vaccination_no": f"{self.region}{at.astimezone(CST):%Y%m%d}{serial:05d}",
                "vaccine_code": v.code,
                "vaccine_name": v.name,
                "dose_number": dose,
                "batch_no": batch_no(vaccine, at.astimezone(CST).date(), 50 + self.inst.index),
                "manufacturer": v.manufacturers[(self.inst.index + dose) % len(v.manufacturers)],
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

    # --- births and deaths ---------------------------------------------------------------------------------
    def _births(self) -> None:
        rng = self.rng
        for birth in self.world.births:
            if birth.mother.region_code != self.region:
                continue
            registered = birth.born_at + upload_delay(rng, "registry")
            mother_type, mother_number = record_id(birth.mother, rng, birth.born_at.astimezone(CST).date(), self.noise)
            serial = next(self._serial)
            row: Row = {
                "birth_id": f"CS{self.region}{serial:08d}",
                "resident_id": self.resident_id(birth.child, registered),
                "certificate_no": birth.certificate_no if rng.random() < 0.97 else None,
                "born_at": birth.born_at,
                "birth_weight_g": birth.weight_g,
                "birth_length_cm": birth.length_cm,
                "gestational_weeks": birth.weeks,
                "mother_name": record_name(birth.mother, rng, self.noise),
                "mother_id_type": mother_type,
                "mother_id_number": mother_number,
                "updated_at": registered,
                "record_version": 1,
                "cancelled": False,
                "_person": birth.child,
                "_event": birth.born_at,
            }
            for seq, (vaccine, at) in enumerate(birth.vaccines, 1):
                v = VACCINES[vaccine]
                institution = birth.hospital if birth.hospital is not None else 50 + self.inst.index
                children(row, "birth_vaccine").append(
                    {
                        "seq": seq,
                        "vaccine_code": v.code,
                        "vaccine_name": v.name,
                        "batch_no": batch_no(vaccine, at.astimezone(CST).date(), institution),
                        "administered_at": at,
                    }
                )
            self.tables["birth_record"].append(row)

    def _deaths(self) -> None:
        window = self.window
        deaths = [d for d in self.world.home_deaths if d.person.region_code == self.region]
        deaths += [d for d in self.world.hospital_deaths if d.person.region_code == self.region]
        for death in deaths:
            if window.contains(death.died_at):
                self._death(death)

    def _death(self, death: Death) -> None:
        rng = self.rng
        lines, (u_code, u_name) = DEATH_CHAINS[death.chain]
        delay = upload_delay(rng, "death")
        if death.hospital is not None:  # reported on by the hospital first
            delay += dt.timedelta(hours=rng.randint(2, 30))
        delay = min(delay, dt.timedelta(days=6))
        serial = next(self._serial)
        row: Row = {
            "death_id": f"DR{self.region}{serial:08d}",
            "resident_id": self.resident_id(death.person, death.died_at),
            "certificate_no": death.certificate_no,
            "died_at": death.died_at,
            "death_place": death.place,
            "underlying_cause_code": u_code,
            "underlying_cause_name": u_name,
            "updated_at": death.died_at + delay,
            "record_version": 1,
            "cancelled": False,
            "_person": death.person,
            "_event": death.died_at,
            "_limit": dt.timedelta(days=6),
        }
        row["_children"] = {
            "death_cause": [
                {"line": line, "code": code, "description": text, "interval": interval or None}
                for line, code, text, interval in lines
            ]
        }
        self.tables["death_record"].append(row)
