"""Small hand-written exchange databases: one row in every table, so every mapping is exercised."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
from psycopg import sql

from foundation.standards.citizen_id import make_citizen_id
from foundation.standards.credit_code import make_credit_code
from producers.adapters.config import SourceConfig
from producers.exchange_db.ddl import create_exchange_schema

PAST = "now() - interval '1 hour'"  # settled: older than the adapter's settle delay

HOSPITAL_ROWS = f"""
INSERT INTO patient (patient_id, name, sex, birth_date, id_type, id_number, phone, residence_region_code, abo_blood_type,
                     rh_blood_type, updated_at)
VALUES ('P1', '张伟', '1', '1968-03-05', '01', '{make_citizen_id("411502", dt.date(1968, 3, 5), 13)}',
        '13800001111', '411502', '1', '2', {PAST}),
       ('P2', '李娜', '2', '1990-07-01', '01', NULL, NULL, '411503', NULL, NULL, {PAST});
INSERT INTO patient_history VALUES ('P1', 1, 'ALLERGY', NULL, '青霉素过敏', NULL);
INSERT INTO outpatient_visit (visit_id, patient_id, visit_no, visit_type, visit_at, department_name, chief_complaint,
                              temperature_c, updated_at)
VALUES ('V1', 'P1', 'MZ001', '1', now() - interval '3 hours', '内科', '发热2天，伴咳嗽，无腹泻', 38.6, {PAST}),
       ('V2', 'P2', 'MZ002', '3', now() - interval '3 hours', '内科', '头晕', NULL, {PAST}),
       ('V3', 'P9', 'MZ003', '2', now() - interval '3 hours', '急诊科', '腹痛', NULL, {PAST}),
       ('V4', 'P2', 'MZ004', '2', now() - interval '3 hours', '急诊科', '腹泻3次', NULL, {PAST});
INSERT INTO outpatient_diagnosis VALUES ('V1', 1, 'J06.900', '急性上呼吸道感染', true), ('V4', 1, 'A09.000', '感染性腹泻', true);
INSERT INTO outpatient_symptom VALUES ('V1', 1, '发热'), ('V1', 2, '咳嗽');
INSERT INTO inpatient_admission (admission_id, patient_id, admission_no, admitted_at, department_name, admission_route, updated_at)
VALUES ('A1', 'P1', 'ZY001', now() - interval '10 days', '心内科', '2', {PAST});
INSERT INTO inpatient_admission_diagnosis VALUES ('A1', 1, 'I20.000', '不稳定型心绞痛', true);
INSERT INTO inpatient_discharge (admission_id, patient_id, admission_no, admitted_at, discharged_at, discharge_method,
                                 total_cost, updated_at)
VALUES ('A1', 'P1', 'ZY001', now() - interval '10 days', now() - interval '2 days', '1', 12345.678, {PAST});
INSERT INTO inpatient_discharge_diagnosis VALUES ('A1', 1, 'I20.000', '不稳定型心绞痛', true);
INSERT INTO inpatient_procedure VALUES ('A1', 1, '36.0601', '冠状动脉支架置入', now() - interval '8 days', true);
INSERT INTO lab_report (report_id, patient_id, report_no, reported_at, updated_at)
VALUES ('L1', 'P1', 'JY001', now() - interval '3 hours', {PAST});
INSERT INTO lab_item (report_id, seq, item_code, item_name, numeric_value, unit, reference_low, reference_high, abnormal_flag)
VALUES ('L1', 1, 'WBC', '白细胞计数', 12.3, '10^9/L', 3.5, 9.5, 'H');
INSERT INTO exam_report (report_id, patient_id, report_no, modality, body_part, impression, reported_at, updated_at)
VALUES ('E1', 'P1', 'JC001', 'DR', '胸部', '双肺纹理增粗', now() - interval '3 hours', {PAST});
INSERT INTO prescription (prescription_id, patient_id, prescription_no, prescribed_at, updated_at)
VALUES ('R1', 'P1', 'CF001', now() - interval '3 hours', {PAST});
INSERT INTO prescription_item (prescription_id, seq, drug_code, drug_name, atc_code, dose, dose_unit, days)
VALUES ('R1', 1, 'XC08CAA001', '苯磺酸氨氯地平片', 'C08CA01', 5, 'mg', 30);
INSERT INTO death_record (death_id, patient_id, certificate_no, died_at, underlying_cause_code, updated_at)
VALUES ('D1', 'P2', 'SW001', now() - interval '1 day', 'I21.900', {PAST});
INSERT INTO death_cause VALUES ('D1', 'Ia', 'I21.900', '急性心肌梗死', '2小时');
INSERT INTO vaccination (vaccination_id, patient_id, vaccination_no, vaccine_code, dose_number, administered_at, updated_at)
VALUES ('X1', 'P2', 'JZ001', '0601', 1, now() - interval '5 hours', {PAST});
"""

COUNTY_ROWS = f"""
INSERT INTO resident (resident_id, name, sex, birth_date, id_type, residence_region_code, updated_at)
VALUES ('R1', '王芳', '2', '1955-01-20', '01', '411525', {PAST}), ('R2', '王小宝', '1', '2026-11-20', NULL, '411525', {PAST});
INSERT INTO chronic_followup (followup_id, resident_id, followup_no, disease_code, followup_at, systolic_bp, diastolic_bp,
                              followup_class, updated_at)
VALUES ('F1', 'R1', 'SF001', 'I10', now() - interval '4 hours', 152, 95, '2', {PAST});
INSERT INTO vaccination (vaccination_id, resident_id, vaccination_no, vaccine_code, dose_number, administered_at, updated_at)
VALUES ('X1', 'R2', 'JZ100', '0201', 2, now() - interval '4 hours', {PAST});
INSERT INTO birth_record (birth_id, resident_id, certificate_no, born_at, birth_weight_g, gestational_weeks, mother_name,
                          updated_at)
VALUES ('B1', 'R2', 'CS001', now() - interval '7 days', 3350, 39, '王芳', {PAST});
INSERT INTO birth_vaccine VALUES ('B1', 1, '0201', '乙肝疫苗', 'HB2026', now() - interval '7 days'),
                                 ('B1', 2, '0101', '卡介苗', 'BCG2026', now() - interval '7 days');
INSERT INTO death_record (death_id, resident_id, certificate_no, died_at, underlying_cause_code, updated_at)
VALUES ('D1', 'R1', 'SW100', now() - interval '1 day', 'C34.900', {PAST});
INSERT INTO death_cause VALUES ('D1', 'Ia', 'C34.900', '肺恶性肿瘤', '2年');
"""


def make_exchange(postgres_url: str, kind: str) -> SourceConfig:
    """A fresh schema in the test database holding one small exchange database."""
    schema = f"{kind[0]}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        create_exchange_schema(conn, kind, schema)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(HOSPITAL_ROWS if kind == "hospital" else COUNTY_ROWS)
    region = "411502" if kind == "hospital" else "411525"
    # A fresh institution per exchange database: watermarks are per institution and the test database is shared.
    org = make_credit_code("12" if kind == "hospital" else "11", region, f"MB{uuid.uuid4().int % 10**6:06d}")
    return SourceConfig(kind=kind, org_code=org, name="测试机构", region_code=region, dsn=postgres_url, schema=schema)


def execute_in(source: SourceConfig, statement: str) -> None:
    with psycopg.connect(source.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(source.schema_name)))
        conn.execute(statement)
