-- Hospital exchange database (医院前置库). The hospital's HIS/LIS/PACS/EMR write here; the platform's
-- `healthbus adapter his` reads it. docs/adapters.md explains each column and what it becomes.
--
-- Rules every table follows:
--   * a primary key that never changes;
--   * updated_at: set to now() on every insert and update (the adapter polls by (updated_at, primary key));
--   * record_version: 1 on insert, +1 on every correction of the row OR of any of its child rows;
--   * cancelled: true when the record is withdrawn (作废); also bump record_version and updated_at.
-- Child tables (diagnoses, items, …) have no timestamps: change them in the same transaction as the parent
-- and bump the parent.

CREATE TABLE IF NOT EXISTS patient (
    patient_id            text PRIMARY KEY,          -- 院内患者ID
    name                  text,
    sex                   text,                      -- GB/T 2261.1: 0 1 2 9
    birth_date            date,
    id_type               text,                      -- WS 364 CV02.01.101: 01 居民身份证 …
    id_number             text,
    health_card           text,                      -- 电子健康卡
    insurance_card        text,                      -- 医保卡
    phone                 text,
    address               text,
    residence_region_code text,                      -- GB/T 2260
    occupation            text,
    ethnicity             text,
    marital_status        text,
    abo_blood_type        text,                      -- CV04.50.005: 1 A 2 B 3 O 4 AB 5 不详
    rh_blood_type         text,                      -- CV04.50.020: 1 阴性 2 阳性 3 不详
    updated_at            timestamptz NOT NULL DEFAULT now(),
    record_version        integer     NOT NULL DEFAULT 1,
    cancelled             boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS patient_history (          -- 过敏史/手术史/家族史/疾病史
    patient_id  text    NOT NULL REFERENCES patient,
    seq         integer NOT NULL,
    kind        text    NOT NULL,                    -- ALLERGY OPERATION FAMILY DISEASE
    code        text,
    description text,
    recorded_at timestamptz,
    PRIMARY KEY (patient_id, seq)
);

CREATE TABLE IF NOT EXISTS outpatient_visit (         -- 门急诊就诊
    visit_id         text PRIMARY KEY,
    patient_id       text NOT NULL,
    visit_no         text NOT NULL,
    visit_type       text NOT NULL,                  -- 1 门诊 2 急诊
    visit_at         timestamptz NOT NULL,
    department_code  text,
    department_name  text,
    chief_complaint  text,                           -- 主诉
    temperature_c    numeric(4,1),
    exposure_history text,                           -- 流行病学史
    updated_at       timestamptz NOT NULL DEFAULT now(),
    record_version   integer     NOT NULL DEFAULT 1,
    cancelled        boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS outpatient_diagnosis (
    visit_id   text    NOT NULL REFERENCES outpatient_visit,
    seq        integer NOT NULL,
    code       text    NOT NULL,                     -- ICD-10 国家临床版 2.0
    name       text,
    is_primary boolean NOT NULL DEFAULT false,
    PRIMARY KEY (visit_id, seq)
);
CREATE TABLE IF NOT EXISTS outpatient_symptom (
    visit_id text    NOT NULL REFERENCES outpatient_visit,
    seq      integer NOT NULL,
    symptom  text    NOT NULL,
    PRIMARY KEY (visit_id, seq)
);

CREATE TABLE IF NOT EXISTS inpatient_admission (      -- 入院
    admission_id    text PRIMARY KEY,
    patient_id      text NOT NULL,
    admission_no    text NOT NULL,
    admitted_at     timestamptz NOT NULL,
    department_code text,
    department_name text,
    ward            text,
    admission_route text,                            -- 1 急诊 2 门诊 3 其他医疗机构转入 9 其他
    updated_at      timestamptz NOT NULL DEFAULT now(),
    record_version  integer     NOT NULL DEFAULT 1,
    cancelled       boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS inpatient_admission_diagnosis (
    admission_id text    NOT NULL REFERENCES inpatient_admission,
    seq          integer NOT NULL,
    code         text    NOT NULL,
    name         text,
    is_primary   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (admission_id, seq)
);
CREATE TABLE IF NOT EXISTS inpatient_discharge (      -- 出院 (病案首页)
    admission_id     text PRIMARY KEY,
    patient_id       text NOT NULL,
    admission_no     text NOT NULL,
    admitted_at      timestamptz NOT NULL,
    discharged_at    timestamptz NOT NULL,
    department_code  text,
    department_name  text,
    discharge_method text NOT NULL,                  -- 1 医嘱离院 2 转院 3 转社区 4 非医嘱离院 5 死亡 9 其他
    died_at          timestamptz,
    total_cost       numeric(14,2),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    record_version   integer     NOT NULL DEFAULT 1,
    cancelled        boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS inpatient_discharge_diagnosis (
    admission_id text    NOT NULL REFERENCES inpatient_discharge,
    seq          integer NOT NULL,
    code         text    NOT NULL,
    name         text,
    is_primary   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (admission_id, seq)
);
CREATE TABLE IF NOT EXISTS inpatient_procedure (
    admission_id text    NOT NULL REFERENCES inpatient_discharge,
    seq          integer NOT NULL,
    code         text    NOT NULL,                   -- ICD-9-CM-3
    name         text,
    performed_at timestamptz,
    is_primary   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (admission_id, seq)
);

CREATE TABLE IF NOT EXISTS lab_report (               -- 检验报告 (LIS)
    report_id       text PRIMARY KEY,
    patient_id      text NOT NULL,
    report_no       text NOT NULL,
    specimen_type   text,
    collected_at    timestamptz,
    reported_at     timestamptz NOT NULL,
    department_name text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    record_version  integer     NOT NULL DEFAULT 1,
    cancelled       boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS lab_item (
    report_id       text    NOT NULL REFERENCES lab_report,
    seq             integer NOT NULL,
    item_code       text    NOT NULL,
    item_name       text,
    result_text     text,
    numeric_value   double precision,
    unit            text,
    reference_range text,
    reference_low   double precision,
    reference_high  double precision,
    abnormal_flag   text,                            -- N H L A
    PRIMARY KEY (report_id, seq)
);

CREATE TABLE IF NOT EXISTS exam_report (              -- 检查报告 (PACS)
    report_id      text PRIMARY KEY,
    patient_id     text NOT NULL,
    report_no      text NOT NULL,
    modality       text NOT NULL,                    -- CT MR DR US ES …
    exam_item_code text,
    exam_item_name text,
    body_part      text,
    findings       text,
    impression     text,
    reported_at    timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    record_version integer     NOT NULL DEFAULT 1,
    cancelled      boolean     NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS prescription (             -- 处方
    prescription_id text PRIMARY KEY,
    patient_id      text NOT NULL,
    prescription_no text NOT NULL,
    visit_no        text,
    prescribed_at   timestamptz NOT NULL,
    department_name text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    record_version  integer     NOT NULL DEFAULT 1,
    cancelled       boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS prescription_item (
    prescription_id text    NOT NULL REFERENCES prescription,
    seq             integer NOT NULL,
    drug_code       text    NOT NULL,
    drug_name       text,
    atc_code        text,
    dose            double precision,
    dose_unit       text,
    frequency       text,
    route           text,
    days            integer,
    quantity        double precision,
    PRIMARY KEY (prescription_id, seq)
);

CREATE TABLE IF NOT EXISTS death_record (             -- 死亡医学证明
    death_id              text PRIMARY KEY,
    patient_id            text NOT NULL,
    certificate_no        text NOT NULL,
    died_at               timestamptz NOT NULL,
    death_place           text,
    underlying_cause_code text NOT NULL,
    underlying_cause_name text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    record_version        integer     NOT NULL DEFAULT 1,
    cancelled             boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS death_cause (
    death_id    text NOT NULL REFERENCES death_record,
    line        text NOT NULL,                       -- Ia Ib Ic Id II
    code        text,
    description text,
    interval    text,
    PRIMARY KEY (death_id, line)
);

CREATE TABLE IF NOT EXISTS vaccination (              -- 预防接种
    vaccination_id  text PRIMARY KEY,
    patient_id      text NOT NULL,
    vaccination_no  text NOT NULL,
    vaccine_code    text NOT NULL,
    vaccine_name    text,
    dose_number     integer NOT NULL,
    batch_no        text,
    manufacturer    text,
    administered_at timestamptz NOT NULL,
    site            text,
    route           text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    record_version  integer     NOT NULL DEFAULT 1,
    cancelled       boolean     NOT NULL DEFAULT false
);

-- The adapter's poll: WHERE (updated_at, pk) > (watermark) ORDER BY updated_at, pk.
CREATE INDEX IF NOT EXISTS patient_poll             ON patient             (updated_at, patient_id);
CREATE INDEX IF NOT EXISTS outpatient_visit_poll    ON outpatient_visit    (updated_at, visit_id);
CREATE INDEX IF NOT EXISTS inpatient_admission_poll ON inpatient_admission (updated_at, admission_id);
CREATE INDEX IF NOT EXISTS inpatient_discharge_poll ON inpatient_discharge (updated_at, admission_id);
CREATE INDEX IF NOT EXISTS lab_report_poll          ON lab_report          (updated_at, report_id);
CREATE INDEX IF NOT EXISTS exam_report_poll         ON exam_report         (updated_at, report_id);
CREATE INDEX IF NOT EXISTS prescription_poll        ON prescription        (updated_at, prescription_id);
CREATE INDEX IF NOT EXISTS death_record_poll        ON death_record        (updated_at, death_id);
CREATE INDEX IF NOT EXISTS vaccination_poll         ON vaccination         (updated_at, vaccination_id);
