-- County public-health exchange database (区县公卫共享交换库). The county platform writes here; the
-- platform's `healthbus adapter county` reads it. Same rules as hospital.sql: stable primary key,
-- updated_at on every write, record_version +1 per correction (of the row or its children), cancelled flag.

CREATE TABLE IF NOT EXISTS resident (                 -- 居民健康档案
    resident_id           text PRIMARY KEY,          -- 区县档案编号
    name                  text,
    sex                   text,
    birth_date            date,
    id_type               text,
    id_number             text,
    health_card           text,
    insurance_card        text,
    phone                 text,
    address               text,
    residence_region_code text,
    occupation            text,
    ethnicity             text,
    marital_status        text,
    abo_blood_type        text,
    rh_blood_type         text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    record_version        integer     NOT NULL DEFAULT 1,
    cancelled             boolean     NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS chronic_followup (         -- 慢病随访
    followup_id          text PRIMARY KEY,
    resident_id          text NOT NULL,
    followup_no          text NOT NULL,
    disease_code         text NOT NULL,              -- ICD-10, e.g. I10, E11
    followup_at          timestamptz NOT NULL,
    followup_method      text,                       -- 1 门诊 2 家庭 3 电话
    systolic_bp          integer,
    diastolic_bp         integer,
    fasting_glucose_mmol double precision,
    followup_class       text NOT NULL,              -- 1 控制满意 2 控制不满意 3 不良反应 4 并发症
    next_followup_date   date,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    record_version       integer     NOT NULL DEFAULT 1,
    cancelled            boolean     NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS vaccination (              -- 预防接种 (接种门诊)
    vaccination_id  text PRIMARY KEY,
    resident_id     text NOT NULL,
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

CREATE TABLE IF NOT EXISTS birth_record (             -- 出生医学证明 (resident = the newborn)
    birth_id          text PRIMARY KEY,
    resident_id       text NOT NULL,
    certificate_no    text,
    born_at           timestamptz NOT NULL,
    birth_weight_g    integer,
    birth_length_cm   numeric(4,1),
    gestational_weeks integer,
    mother_name       text,
    mother_id_type    text,
    mother_id_number  text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    record_version    integer     NOT NULL DEFAULT 1,
    cancelled         boolean     NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS birth_vaccine (            -- 出生时接种: 乙肝疫苗首针, 卡介苗
    birth_id        text    NOT NULL REFERENCES birth_record,
    seq             integer NOT NULL,
    vaccine_code    text    NOT NULL,
    vaccine_name    text,
    batch_no        text,
    administered_at timestamptz NOT NULL,
    PRIMARY KEY (birth_id, seq)
);

CREATE TABLE IF NOT EXISTS death_record (             -- 死亡登记
    death_id              text PRIMARY KEY,
    resident_id           text NOT NULL,
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
    line        text NOT NULL,
    code        text,
    description text,
    interval    text,
    PRIMARY KEY (death_id, line)
);

CREATE INDEX IF NOT EXISTS resident_poll         ON resident         (updated_at, resident_id);
CREATE INDEX IF NOT EXISTS chronic_followup_poll ON chronic_followup (updated_at, followup_id);
CREATE INDEX IF NOT EXISTS vaccination_poll      ON vaccination      (updated_at, vaccination_id);
CREATE INDEX IF NOT EXISTS birth_record_poll     ON birth_record     (updated_at, birth_id);
CREATE INDEX IF NOT EXISTS death_record_poll     ON death_record     (updated_at, death_id);
