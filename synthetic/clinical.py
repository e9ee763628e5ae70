"""What residents fall ill with and how it is written down: presentations (chief complaint templates with
syndromes and negations, temperature, structured symptoms, ICD-10 national clinical edition diagnoses,
departments, what gets ordered), chronic conditions by age and sex, and seasonality.

Weights are relative visit frequencies per age group (child 0-6, student 7-18, adult 19-59, elderly ≥60)
shaped like a Chinese county hospital's outpatient case mix; they are plausible, not survey estimates.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from dataclasses import dataclass

from synthetic.population import Person

Weights4 = tuple[float, float, float, float]
FLAT = (1.0,) * 12
# Month factors (Jan..Dec), shaped after the seasonal curves reported for Henan.
FLU_SEASON = (3.0, 2.5, 1.2, 0.6, 0.4, 0.3, 0.3, 0.3, 0.4, 0.6, 1.0, 2.0)
HFMD_SEASON = (0.2, 0.2, 0.5, 1.5, 2.5, 2.5, 1.5, 0.8, 0.8, 1.0, 0.8, 0.4)
SFTS_SEASON = (0.0, 0.0, 0.1, 0.8, 2.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.15, 0.02)  # ticks: April-October
RESP_SEASON = (1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.8, 0.8, 0.9, 1.0, 1.2, 1.3)
GI_SEASON = (0.8, 0.8, 0.8, 0.9, 1.1, 1.3, 1.5, 1.5, 1.2, 1.1, 1.3, 1.0)  # summer bacterial, autumn viral
RASH_SEASON = (0.8, 0.8, 1.2, 1.5, 1.5, 1.2, 0.8, 0.6, 0.6, 0.8, 1.1, 1.2)

# Department names and local codes (诊疗科目-style numbering).
DEPARTMENTS: dict[str, str] = {
    "呼吸内科": "0301",
    "消化内科": "0302",
    "神经内科": "0303",
    "心血管内科": "0304",
    "内分泌科": "0307",
    "全科医疗科": "0200",
    "普通外科": "0401",
    "骨科": "0403",
    "妇科": "0501",
    "产科": "0502",
    "儿科": "0700",
    "眼科": "1000",
    "耳鼻咽喉科": "1100",
    "口腔科": "1200",
    "皮肤科": "1300",
    "精神科": "1500",
    "感染性疾病科": "1600",
    "肿瘤科": "1900",
    "急诊医学科": "2000",
    "发热门诊": "2001",
    "中医科": "5000",
}


@dataclass(frozen=True, slots=True)
class Presentation:
    key: str
    dx: tuple[tuple[str, str, float], ...]  # (ICD-10 national clinical code, name, weight)
    febrile: tuple[str, ...] = ()  # chief complaint templates for a case with fever
    afebrile: tuple[str, ...] = ()  # ... and without
    fever_share: float = 0.0
    fever_range: tuple[float, float] = (37.5, 39.0)
    symptoms: tuple[str, ...] = ()  # structured symptoms (发热 is added for febrile cases)
    negations: tuple[str, ...] = ()  # negated clauses that may be appended ("无腹泻")
    outpatient: Weights4 = (0.0, 0.0, 0.0, 0.0)
    inpatient: Weights4 = (0.0, 0.0, 0.0, 0.0)
    sex: str | None = None
    min_age: int = 0
    max_age: int = 120
    condition: str | None = None  # a revisit for this chronic condition
    department: str = "全科医疗科"
    emergency_share: float = 0.05
    season: tuple[float, ...] = FLAT
    rural_only: bool = False
    los: tuple[int, int] = (5, 10)
    mortality: float = 0.0  # in-hospital, for the elderly (halved below 60)
    labs: tuple[tuple[str, float], ...] = ()
    exams: tuple[tuple[str, float], ...] = ()
    drugs: tuple[tuple[str, float], ...] = ()
    procedures: tuple[tuple[str, float], ...] = ()
    lab_profile: str = "normal"
    finding: str = "normal"
    exposure: tuple[str, ...] = ()

    def applies(self, person: Person, day: dt.date) -> bool:
        age = person.age_on(day)
        return (self.sex is None or self.sex == person.sex) and self.min_age <= age <= self.max_age


P = Presentation
FEVER_LABS = (("cbc", 0.55), ("crp", 0.3))
PRESENTATIONS: tuple[Presentation, ...] = (
    P(
        "uri",
        (("J06.900", "急性上呼吸道感染", 1.0),),
        febrile=(
            "发热{d}天，伴咳嗽、咽痛，无腹泻",
            "发烧{d}天，最高体温{ti}度，咽喉痛",
            "流鼻涕、打喷嚏{d}天，体温{t}℃",
            "发热{d}天，鼻塞流涕",
            "低热{d}天，咽痛，轻咳",
        ),
        afebrile=(
            "咽痛{d}天，流涕，无发热",
            "咳嗽{d}天，鼻塞流涕，未诉发热",
            "咳嗽{d}天，咽部疼痛，否认发热",
            "发热(-)，咳嗽(+)，咽痛{d}天",
            "鼻塞、流鼻涕{d}天",
        ),
        fever_share=0.55,
        fever_range=(37.4, 39.2),
        symptoms=("咳嗽", "咽痛", "流涕"),
        negations=("无腹泻", "无呕吐", "否认胸痛", "未诉头痛"),
        outpatient=(30, 18, 12, 7),
        inpatient=(2, 0.3, 0, 0),
        department="呼吸内科",
        season=RESP_SEASON,
        labs=FEVER_LABS + (("flu", 0.1),),
        drugs=(("lianhua", 0.4), ("ibuprofen", 0.35), ("cefuroxime", 0.2), ("amoxicillin", 0.2), ("ambroxol", 0.3)),
        lab_profile="viral",
        los=(3, 5),
    ),
    P(
        "tonsillitis",
        (("J03.900", "急性扁桃体炎", 1.0),),
        febrile=("发热{d}天，咽痛，吞咽时加重", "咽喉痛{d}天，高热，体温{t}℃，无咳嗽"),
        afebrile=("咽痛{d}天，吞咽痛，无发热",),
        fever_share=0.8,
        fever_range=(38.0, 39.6),
        symptoms=("咽痛",),
        outpatient=(10, 8, 3, 1),
        department="耳鼻咽喉科",
        labs=FEVER_LABS,
        lab_profile="bacterial",
        drugs=(("amoxicillin", 0.6), ("cefuroxime", 0.3), ("ibuprofen", 0.5)),
    ),
    P(
        "bronchitis",
        (("J20.900", "急性支气管炎", 1.0),),
        febrile=("咳嗽、咳痰{d}天，低热", "发热{d}天，咳嗽有痰"),
        afebrile=("咳嗽、咳痰{d}天，无发热", "咳嗽{d}天，痰多，否认发热", "咳嗽{w}周，夜间加重，无发热"),
        fever_share=0.3,
        fever_range=(37.3, 38.5),
        symptoms=("咳嗽", "咳痰"),
        negations=("无胸痛", "无腹泻"),
        outpatient=(10, 6, 6, 6),
        inpatient=(4, 1, 0.5, 1),
        department="呼吸内科",
        season=RESP_SEASON,
        labs=FEVER_LABS,
        exams=(("chest_dr", 0.35),),
        drugs=(("ambroxol", 0.6), ("azithromycin", 0.3), ("cefuroxime", 0.3)),
        los=(4, 7),
    ),
    P(
        "pneumonia",
        (("J18.900", "肺炎", 0.8), ("J15.900", "细菌性肺炎", 0.2)),
        febrile=("咳嗽咳痰{d}天，发热，气促", "发热伴咳嗽{d}天，呼吸困难1天", "发热{d}天，体温{t}℃，咳黄痰"),
        afebrile=("咳嗽咳痰{d}天，胸闷气喘，无发热", "咳嗽{w}周，气促，未诉发热"),
        fever_share=0.75,
        fever_range=(38.0, 39.8),
        symptoms=("咳嗽", "咳痰", "气促"),
        negations=("无腹泻",),
        outpatient=(6, 2, 3, 7),
        inpatient=(10, 3, 3, 12),
        department="呼吸内科",
        season=RESP_SEASON,
        emergency_share=0.2,
        labs=(("cbc", 0.95), ("crp", 0.8), ("pct", 0.3), ("biochem", 0.5)),
        exams=(("chest_dr", 0.6), ("chest_ct", 0.35)),
        drugs=(("ceftriaxone", 0.5), ("levofloxacin", 0.3), ("azithromycin", 0.3), ("ambroxol", 0.5)),
        procedures=(("oxygen", 0.3),),
        lab_profile="bacterial",
        finding="pneumonia",
        los=(6, 12),
        mortality=0.02,
    ),
    P(
        "influenza",
        (("J11.101", "流行性感冒", 1.0),),
        febrile=(
            "高热{d}天，体温{t}℃，伴咳嗽、全身酸痛",
            "发热{d}天，T {t}°C，干咳，咽痛，头痛",
            "发烧{d}天，最高体温{ti}度，咳嗽，乏力，无腹泻",
            "发热{d}天，咽痛，肌肉酸痛，流感抗原阳性",
        ),
        afebrile=("咳嗽、咽痛{d}天，全身酸痛，体温正常",),
        fever_share=0.95,
        fever_range=(38.2, 40.1),
        symptoms=("咳嗽", "咽痛", "头痛"),
        negations=("无呕吐", "无皮疹"),
        outpatient=(3, 4, 1.5, 1),
        inpatient=(0.5, 0.1, 0.1, 0.5),
        department="发热门诊",
        season=FLU_SEASON,
        labs=(("flu", 0.7), ("cbc", 0.6)),
        drugs=(("oseltamivir", 0.8), ("ibuprofen", 0.5), ("lianhua", 0.3)),
        lab_profile="influenza",
        exposure=("家中有类似发热患者", "班级有多名同学发热", "无明确流行病学史"),
        los=(3, 6),
    ),
    P(
        "gastroenteritis",
        (("K52.900", "急性胃肠炎", 1.0),),
        febrile=("腹泻{n}次，稀水样便，伴发热，体温{t}℃", "呕吐、腹泻{d}天，发热"),
        afebrile=(
            "腹泻{n}次，水样便，伴呕吐，不伴发热",
            "恶心呕吐{d}天，腹泻，无发热",
            "拉肚子{d}天，腹痛，未诉发热",
            "腹痛伴稀便{d}天，无发热，无黏液脓血便",
        ),
        fever_share=0.25,
        fever_range=(37.4, 38.6),
        symptoms=("腹泻", "呕吐", "腹痛"),
        negations=("无咳嗽",),
        outpatient=(6, 5, 6, 4),
        inpatient=(3, 1, 1, 1),
        department="消化内科",
        season=GI_SEASON,
        labs=(("cbc", 0.5), ("stool", 0.4)),
        drugs=(("smectite", 0.6), ("ors", 0.4), ("omeprazole", 0.2)),
        lab_profile="normal",
        los=(3, 5),
    ),
    P(
        "infectious_diarrhoea",
        (("A09.000", "感染性腹泻", 0.7), ("A08.001", "轮状病毒性肠炎", 0.3)),
        febrile=("拉肚子{d}天，发烧", "解稀便{n}次/天，伴发热，腹痛", "腹泻{d}天，每日{n}次，发热，体温{t}℃"),
        afebrile=("腹泻{d}天，每日{n}次，无呕吐", "稀水样便{n}次，不伴发热"),
        fever_share=0.45,
        fever_range=(37.5, 38.8),
        symptoms=("腹泻",),
        outpatient=(5, 2, 2, 2),
        inpatient=(2, 0.3, 0.2, 0.5),
        department="感染性疾病科",
        season=GI_SEASON,
        labs=(("cbc", 0.6), ("stool", 0.6)),
        drugs=(("smectite", 0.7), ("ors", 0.6)),
        lab_profile="normal",
        los=(3, 5),
    ),
    P(
        "hfmd",
        (("B08.401", "手足口病", 1.0),),
        febrile=(
            "发热{d}天，口腔疱疹，手足皮疹",
            "手足出现红疹{d}天，口腔溃疡，发热",
            "口腔溃疡伴手掌、足底疱疹{d}天，体温{t}℃",
        ),
        afebrile=("手足皮疹{d}天，口腔疱疹，无发热",),
        fever_share=0.75,
        fever_range=(37.6, 39.2),
        symptoms=("皮疹", "口腔疱疹"),
        negations=("无抽搐", "无呕吐"),
        outpatient=(8, 0.3, 0, 0),
        inpatient=(1.5, 0, 0, 0),
        max_age=10,
        department="儿科",
        season=HFMD_SEASON,
        labs=(("cbc", 0.6),),
        drugs=(("ibuprofen_susp", 0.6), ("kangfuxin", 0.5)),
        lab_profile="viral",
        exposure=("幼儿园有类似病例", "无明确接触史"),
        los=(4, 7),
    ),
    P(
        "herpangina",
        (("B08.501", "疱疹性咽峡炎", 1.0),),
        febrile=("发热{d}天，咽痛，咽部疱疹，手足未见皮疹", "高热{d}天，咽峡部疱疹，流涎"),
        fever_share=0.95,
        fever_range=(38.0, 39.8),
        symptoms=("咽痛",),
        outpatient=(5, 0.5, 0, 0),
        max_age=12,
        department="儿科",
        season=HFMD_SEASON,
        labs=(("cbc", 0.5),),
        drugs=(("ibuprofen_susp", 0.7),),
        lab_profile="viral",
    ),
    P(
        "varicella",
        (("B01.900", "水痘", 1.0),),
        febrile=("发热伴皮疹{d}天，躯干水疱", "发热{d}天，全身散在红疹、水疱"),
        afebrile=("全身散在水疱{d}天，瘙痒，无发热",),
        fever_share=0.6,
        fever_range=(37.5, 38.8),
        symptoms=("皮疹",),
        outpatient=(1.5, 1.5, 0.2, 0),
        department="皮肤科",
        season=RASH_SEASON,
        drugs=(("acyclovir", 0.6),),
        exposure=("班级有水痘病例",),
    ),
    P(
        "mumps",
        (("B26.900", "流行性腮腺炎", 1.0),),
        febrile=("左侧腮腺肿痛{d}天，发热", "双侧腮腺肿大{d}天，伴发热"),
        afebrile=("右侧耳下肿痛{d}天，无发热",),
        fever_share=0.7,
        fever_range=(37.6, 39.0),
        outpatient=(0.8, 1.0, 0.1, 0),
        department="儿科",
        season=RASH_SEASON,
        labs=(("cbc", 0.4),),
    ),
    P(
        "scarlet_fever",
        (("A38.x00", "猩红热", 1.0),),
        febrile=("发热{d}天，咽痛，全身红色皮疹",),
        fever_share=1.0,
        fever_range=(38.2, 39.6),
        symptoms=("皮疹", "咽痛"),
        outpatient=(0.6, 0.3, 0, 0),
        max_age=14,
        department="儿科",
        season=RASH_SEASON,
        labs=FEVER_LABS,
        lab_profile="bacterial",
        drugs=(("amoxicillin", 0.8),),
    ),
    P(
        "conjunctivitis",
        (("H10.300", "急性结膜炎", 1.0),),
        afebrile=("双眼发红{d}天，分泌物增多，无发热", "眼红、流泪{d}天", "左眼结膜充血{d}天，异物感"),
        symptoms=("眼红",),
        outpatient=(1.0, 1.5, 1.5, 0.8),
        department="眼科",
        season=(0.6, 0.6, 0.8, 1.0, 1.2, 1.5, 1.8, 1.8, 1.3, 1.0, 0.8, 0.6),
        drugs=(("tobramycin_eye", 0.8),),
    ),
    P(
        "urticaria",
        (("L50.900", "荨麻疹", 1.0),),
        afebrile=("全身红疹{d}天，瘙痒，无发热", "皮肤风团{d}天，反复发作"),
        symptoms=("皮疹",),
        outpatient=(1, 1.5, 2, 1),
        department="皮肤科",
        drugs=(("loratadine", 0.9),),
    ),
    P(
        "dermatitis",
        (("L30.900", "皮炎", 1.0),),
        afebrile=("皮肤瘙痒伴红疹{w}周，无发热", "双手皮疹{w}周"),
        outpatient=(2, 1, 2, 1),
        department="皮肤科",
        drugs=(("loratadine", 0.5),),
    ),
    P(
        "uti",
        (("N39.000", "泌尿道感染", 1.0),),
        febrile=("尿痛{d}天，伴发热，腰痛",),
        afebrile=("尿频尿急尿痛{d}天，无发热", "尿频{d}天，否认肉眼血尿"),
        fever_share=0.2,
        fever_range=(37.6, 39.0),
        outpatient=(0.5, 0.5, 3, 3),
        department="全科医疗科",
        labs=(("urine", 0.9), ("cbc", 0.4)),
        drugs=(("levofloxacin", 0.6),),
        lab_profile="uti",
    ),
    P(
        "gastritis",
        (("K29.700", "胃炎", 1.0),),
        afebrile=("上腹痛{w}周，无呕吐", "上腹部胀痛{d}天，反酸嗳气，未诉黑便"),
        outpatient=(0, 1, 6, 5),
        department="消化内科",
        exams=(("gastroscopy", 0.15),),
        drugs=(("omeprazole", 0.9),),
        finding="gastritis",
    ),
    P(
        "low_back_pain",
        (("M54.500", "腰痛", 0.6), ("M51.202", "腰椎间盘突出", 0.4)),
        afebrile=("腰痛{d}天，无发热", "腰部疼痛{w}周，活动受限", "腰痛伴右下肢放射痛{w}周"),
        outpatient=(0, 0.3, 6, 6),
        department="骨科",
        exams=(("lumbar_ct", 0.3),),
        drugs=(("diclofenac", 0.6), ("celecoxib", 0.3)),
    ),
    P(
        "knee_oa",
        (("M17.900", "膝关节病", 1.0),),
        afebrile=("双膝关节疼痛{m}月，上下楼加重",),
        outpatient=(0, 0, 1, 5),
        min_age=40,
        department="骨科",
        exams=(("knee_dr", 0.4),),
        drugs=(("celecoxib", 0.6),),
    ),
    P(
        "headache",
        (("R51.x00", "头痛", 1.0),),
        afebrile=("头痛{d}天，无发热，无呕吐", "头痛{w}周，否认外伤史"),
        outpatient=(0, 1, 2, 1),
        department="神经内科",
        drugs=(("ibuprofen", 0.5),),
    ),
    P(
        "dizziness",
        (("R42.x00", "头晕", 1.0),),
        afebrile=("头晕{d}天，无恶心呕吐", "头晕{w}周，无视物旋转"),
        outpatient=(0, 0.3, 2, 3),
        department="神经内科",
        exams=(("head_ct", 0.15),),
    ),
    P(
        "fever_unknown",
        (("R50.900", "发热", 1.0),),
        febrile=("发热{d}天，原因待查，体温{t}℃", "低热{d}天，无咳嗽"),
        fever_share=1.0,
        fever_range=(37.5, 39.0),
        outpatient=(4, 2, 2, 2),
        department="发热门诊",
        labs=FEVER_LABS,
        lab_profile="viral",
    ),
    P(
        "hand_wound",
        (("S61.900", "手开放性伤口", 1.0),),
        afebrile=("切割伤致左手出血{h}小时", "右手被玻璃划伤{h}小时"),
        outpatient=(0.5, 2, 4, 1.5),
        department="普通外科",
        emergency_share=0.6,
        drugs=(("tetanus", 0.5),),
    ),
    P(
        "radius_fracture",
        (("S52.500", "桡骨下端骨折", 1.0),),
        afebrile=("摔伤致右腕肿痛{h}小时", "跌倒后左腕疼痛、畸形{h}小时"),
        outpatient=(0.3, 1, 1, 2.5),
        inpatient=(0.3, 1, 0.5, 1),
        department="骨科",
        emergency_share=0.5,
        exams=(("wrist_dr", 0.95),),
        procedures=(("orif_radius", 0.5), ("closed_reduction", 0.4)),
        finding="fracture",
        los=(5, 9),
    ),
    P(
        "head_injury",
        (("S06.000", "脑震荡", 1.0),),
        afebrile=("车祸致头部外伤{h}小时，伴头痛、呕吐1次", "摔伤头部{h}小时，短暂意识丧失"),
        outpatient=(0.2, 0.5, 1, 0.8),
        department="急诊医学科",
        emergency_share=0.9,
        exams=(("head_ct", 0.9),),
    ),
    P(
        "dog_bite",
        (("S81.800", "小腿开放性伤口", 0.7), ("S61.900", "手开放性伤口", 0.3)),
        afebrile=("被狗咬伤左小腿{h}小时", "被犬咬伤右手{h}小时，伤口少量出血", "被猫抓伤{h}小时"),
        outpatient=(1, 1, 2, 1),
        department="急诊医学科",
        emergency_share=0.5,
        exposure=("被家犬咬伤，犬未免疫", "被流浪犬咬伤"),
    ),
    P(
        "prenatal",
        (("Z34.900", "正常妊娠监督", 1.0),),
        afebrile=("孕{g}周，常规产检", "停经{g}周，产前检查"),
        outpatient=(0, 0, 0, 0),
        sex="2",
        min_age=18,
        max_age=45,
        condition="PREG",
        department="产科",
        exams=(("ob_us", 0.6),),
        labs=(("cbc", 0.4),),
        drugs=(("folic_acid", 0.3),),
        finding="pregnancy",
    ),
    P(
        "hypertension",
        (("I10.x00x002", "高血压", 1.0),),
        afebrile=(
            "头晕{w}周，无胸痛",
            "血压升高{y}年，复诊开药",
            "头痛头晕{d}天，否认恶心呕吐",
            "高血压复诊，血压控制可",
        ),
        inpatient=(0, 0, 1, 2),
        condition="HTN",
        department="心血管内科",
        labs=(("biochem", 0.25),),
        drugs=(
            ("amlodipine", 0.6),
            ("nifedipine", 0.25),
            ("valsartan", 0.3),
            ("irbesartan", 0.2),
            ("metoprolol", 0.15),
        ),
        los=(5, 9),
    ),
    P(
        "diabetes",
        (("E11.900", "2型糖尿病", 1.0),),
        afebrile=(
            "口干多饮{m}月，否认多尿",
            "血糖升高{y}年，复诊",
            "多饮多尿伴体重下降{m}月",
            "糖尿病复诊，无手足麻木",
        ),
        inpatient=(0, 0, 1.5, 2.5),
        condition="DM",
        department="内分泌科",
        labs=(("glucose", 0.6), ("hba1c", 0.35), ("biochem", 0.25)),
        drugs=(("metformin", 0.7), ("acarbose", 0.3), ("gliclazide", 0.25), ("glargine", 0.15)),
        lab_profile="diabetes",
        los=(7, 12),
    ),
    P(
        "chd",
        (("I25.103", "冠状动脉粥样硬化性心脏病", 1.0),),
        afebrile=("胸闷气短{d}天，活动后加重", "阵发性胸痛{w}周", "冠心病复诊，无胸痛"),
        inpatient=(0, 0, 2, 6),
        condition="CHD",
        department="心血管内科",
        labs=(("biochem", 0.3),),
        exams=(("cardiac_us", 0.2),),
        drugs=(("aspirin", 0.8), ("atorvastatin", 0.7), ("clopidogrel", 0.3), ("metoprolol", 0.3)),
        procedures=(("coronary_angiography", 0.6), ("ptca", 0.25), ("stent", 0.25)),
        los=(5, 10),
        mortality=0.01,
    ),
    P(
        "stroke_sequelae",
        (("I69.300", "脑梗死后遗症", 1.0),),
        afebrile=("脑梗死后{y}年，左侧肢体活动不利，复诊",),
        condition="STROKE",
        department="神经内科",
        drugs=(("aspirin", 0.8), ("atorvastatin", 0.7)),
    ),
    P(
        "copd",
        (("J44.900", "慢性阻塞性肺疾病", 0.6), ("J44.100", "慢性阻塞性肺疾病伴有急性加重", 0.4)),
        afebrile=("反复咳嗽咳痰{y}年，气喘加重{d}天", "气促{d}天，无发热", "慢阻肺复诊，活动后气喘"),
        febrile=("咳嗽咳痰加重{d}天，伴发热，气喘",),
        fever_share=0.15,
        fever_range=(37.4, 38.6),
        symptoms=("咳嗽", "气喘"),
        inpatient=(0, 0, 0.5, 6),
        condition="COPD",
        department="呼吸内科",
        labs=(("cbc", 0.5), ("crp", 0.3)),
        exams=(("chest_ct", 0.3),),
        drugs=(("tiotropium", 0.6), ("budesonide_formoterol", 0.4), ("ambroxol", 0.4)),
        procedures=(("niv", 0.2),),
        lab_profile="bacterial",
        finding="copd",
        los=(7, 14),
        mortality=0.025,
    ),
    P(
        "hepatitis_b",
        (("B18.100", "慢性乙型病毒性肝炎", 1.0),),
        afebrile=(
            "乏力、纳差{w}周，肝功能复查",
            "乙肝复诊，无皮肤黄染",
            "乙肝病史{y}年，定期复查",
            "皮肤巩膜黄染{d}天，乏力",
        ),
        inpatient=(0, 0, 0.5, 0.5),
        condition="HBV",
        department="感染性疾病科",
        labs=(("biochem", 0.7), ("hbv", 0.5)),
        exams=(("abd_us", 0.4),),
        drugs=(("entecavir", 0.7), ("tdf", 0.3)),
        lab_profile="hepatitis",
        finding="hepatitis",
        los=(7, 14),
    ),
    P(
        "tuberculosis",
        (("A15.000", "肺结核", 1.0),),
        febrile=("咳嗽咳痰{w}周，午后低热，盗汗",),
        afebrile=("肺结核抗结核治疗复诊", "咳嗽{w}周，痰中带血，消瘦"),
        fever_share=0.35,
        fever_range=(37.3, 38.0),
        symptoms=("咳嗽", "咳痰"),
        inpatient=(0, 0, 0.2, 0.2),
        condition="TB",
        department="感染性疾病科",
        exams=(("chest_ct", 0.4),),
        drugs=(("isoniazid", 0.8), ("rifampicin", 0.8)),
        finding="tuberculosis",
        los=(10, 20),
    ),
    P(
        "lung_cancer",
        (("C34.900", "肺恶性肿瘤", 1.0),),
        afebrile=("咳嗽痰中带血{w}周，消瘦", "肺癌化疗后复查"),
        inpatient=(0, 0, 2, 4),
        condition="CA_LUNG",
        department="肿瘤科",
        labs=(("cbc", 0.8), ("biochem", 0.6)),
        exams=(("chest_ct", 0.5),),
        procedures=(("chemo", 0.85), ("bronchoscopy", 0.1)),
        finding="lung_cancer",
        los=(4, 8),
        mortality=0.04,
    ),
    P(
        "gastric_cancer",
        (("C16.900", "胃恶性肿瘤", 1.0),),
        afebrile=("上腹部不适{m}月，黑便", "胃癌术后复查"),
        inpatient=(0, 0, 1.5, 3),
        condition="CA_GASTRIC",
        department="肿瘤科",
        labs=(("cbc", 0.8),),
        exams=(("gastroscopy", 0.3),),
        procedures=(("chemo", 0.7), ("gastrectomy", 0.15)),
        finding="gastric_cancer",
        los=(5, 12),
        mortality=0.03,
    ),
    P(
        "liver_cancer",
        (("C22.000", "肝细胞癌", 1.0),),
        afebrile=("右上腹隐痛{m}月，消瘦", "肝癌介入治疗后复查"),
        inpatient=(0, 0, 1.5, 2.5),
        condition="CA_LIVER",
        department="肿瘤科",
        labs=(("biochem", 0.8),),
        exams=(("abd_us", 0.5),),
        procedures=(("chemo", 0.5),),
        lab_profile="hepatitis",
        finding="liver_cancer",
        los=(6, 12),
        mortality=0.05,
    ),
    P(
        "oesophageal_cancer",
        (("C15.900", "食管恶性肿瘤", 1.0),),
        afebrile=("进行性吞咽困难{m}月", "食管癌放化疗后复查"),
        inpatient=(0, 0, 1, 3),
        condition="CA_ESOPH",
        department="肿瘤科",
        labs=(("cbc", 0.7),),
        exams=(("gastroscopy", 0.3),),
        procedures=(("chemo", 0.8),),
        finding="oesophageal_cancer",
        los=(6, 12),
        mortality=0.04,
    ),
    P(
        "breast_cancer",
        (("C50.900", "乳腺恶性肿瘤", 1.0),),
        afebrile=("发现左乳肿块{m}月", "乳腺癌术后化疗"),
        inpatient=(0, 0, 2, 1),
        sex="2",
        condition="CA_BREAST",
        department="肿瘤科",
        labs=(("cbc", 0.8),),
        procedures=(("chemo", 0.8),),
        los=(3, 7),
    ),
    P(
        "colon_cancer",
        (("C18.900", "结肠恶性肿瘤", 1.0),),
        afebrile=("大便习惯改变{m}月，便中带血", "结肠癌术后复查"),
        inpatient=(0, 0, 1, 2),
        condition="CA_COLON",
        department="肿瘤科",
        labs=(("cbc", 0.8),),
        procedures=(("chemo", 0.7), ("colonoscopy", 0.2)),
        los=(5, 10),
        mortality=0.02,
    ),
    P(
        "schizophrenia",
        (("F20.900", "精神分裂症", 1.0),),
        afebrile=("精神分裂症复诊，病情稳定", "凭空闻语{m}月，睡眠差"),
        condition="SCZ",
        department="精神科",
        drugs=(("risperidone", 0.9),),
    ),
    P(
        "sfts",
        (("A93.800", "发热伴血小板减少综合征", 1.0),),
        febrile=(
            "发热{d}天，乏力，皮下出血点",
            "高热{d}天，牙龈出血，伴恶心呕吐",
            "发热{d}天，体温{t}℃，全身酸痛，纳差",
        ),
        fever_share=1.0,
        fever_range=(38.2, 40.2),
        symptoms=("乏力", "出血点"),
        outpatient=(0, 0, 0.2, 0.35),
        inpatient=(0, 0, 0.4, 0.8),
        min_age=30,
        department="感染性疾病科",
        emergency_share=0.2,
        season=SFTS_SEASON,
        rural_only=True,
        labs=(("cbc", 0.98), ("biochem", 0.8), ("sfts", 0.6)),
        lab_profile="sfts",
        exposure=("发病前2周有山区劳作史，有蜱虫叮咬史", "有茶园劳作史，否认蜱虫叮咬", "发病前有野外割草史"),
        drugs=(("doxycycline", 0.2),),
        los=(7, 14),
        mortality=0.06,
    ),
    P(
        "hepatitis_e",
        (("B17.200", "急性戊型病毒性肝炎", 1.0),),
        afebrile=("皮肤巩膜黄染{d}天，乏力纳差，无发热",),
        symptoms=("黄疸",),
        outpatient=(0, 0, 0.2, 0.3),
        inpatient=(0, 0, 0.2, 0.3),
        department="感染性疾病科",
        labs=(("biochem", 0.95),),
        lab_profile="hepatitis",
        los=(10, 16),
    ),
    P(
        "encephalitis",
        (("A86.x00", "病毒性脑炎", 1.0),),
        febrile=("发热{d}天，头痛伴呕吐，嗜睡", "发热{d}天，抽搐1次"),
        fever_share=1.0,
        fever_range=(38.3, 40.0),
        symptoms=("头痛", "呕吐"),
        outpatient=(0.3, 0.2, 0.05, 0.05),
        inpatient=(0.6, 0.4, 0.1, 0.1),
        department="儿科",
        emergency_share=0.6,
        labs=FEVER_LABS,
        exams=(("head_ct", 0.6),),
        lab_profile="viral",
        los=(10, 18),
        mortality=0.01,
    ),
    P(
        "otitis",
        (("H66.900", "中耳炎", 1.0),),
        febrile=("耳痛{d}天，伴发热",),
        afebrile=("右耳痛{d}天，无发热",),
        fever_share=0.5,
        fever_range=(37.6, 38.8),
        outpatient=(2, 1, 0.3, 0.2),
        department="耳鼻咽喉科",
        drugs=(("amoxicillin", 0.6),),
    ),
    P(
        "dental",
        (("K02.900", "龋病", 1.0),),
        afebrile=("牙痛{d}天", "右下后牙冷热刺激痛{w}周"),
        outpatient=(1, 1, 1, 0.5),
        department="口腔科",
    ),
    P(
        "anaemia",
        (("D64.900", "贫血", 1.0),),
        afebrile=("乏力、头晕{m}月", "面色苍白{m}月"),
        outpatient=(0.3, 0.3, 1, 1),
        department="全科医疗科",
        labs=(("cbc", 0.95),),
        lab_profile="anaemia",
    ),
    P(
        "insomnia",
        (("G47.000", "失眠", 1.0),),
        afebrile=("入睡困难{m}月", "失眠多梦{m}月"),
        outpatient=(0, 0.2, 1.5, 1.5),
        department="中医科",
    ),
    P(
        "depression",
        (("F32.900", "抑郁发作", 1.0),),
        afebrile=("情绪低落{m}月，失眠",),
        outpatient=(0, 0.3, 0.8, 0.4),
        department="精神科",
    ),
    P(
        "heart_failure",
        (("I50.900", "心力衰竭", 1.0),),
        afebrile=("活动后气促{w}周，双下肢水肿", "胸闷气喘{d}天，夜间不能平卧"),
        symptoms=("气促",),
        outpatient=(0, 0, 0.2, 1),
        inpatient=(0, 0, 0.5, 4),
        min_age=40,
        department="心血管内科",
        labs=(("biochem", 0.8),),
        exams=(("cardiac_us", 0.5), ("chest_dr", 0.4)),
        drugs=(("furosemide", 0.7),),
        los=(7, 12),
        mortality=0.04,
    ),
    P(
        "asthma",
        (("J45.900", "哮喘", 1.0),),
        afebrile=("反复气喘{y}年，加重{d}天，无发热",),
        symptoms=("气喘",),
        outpatient=(0.5, 1, 0.8, 0.5),
        department="呼吸内科",
        drugs=(("budesonide_formoterol", 0.8),),
    ),
    P(
        "acute_stroke",
        (("I63.900", "脑梗死", 1.0),),
        afebrile=("突发左侧肢体无力{h}小时，言语不清", "突发头晕伴右侧肢体麻木{h}小时", "晨起口角歪斜{h}小时"),
        outpatient=(0, 0, 0.3, 1.5),
        inpatient=(0, 0, 2, 10),
        min_age=35,
        department="神经内科",
        emergency_share=0.8,
        labs=(("cbc", 0.9), ("biochem", 0.9)),
        exams=(("head_ct", 0.95),),
        drugs=(("aspirin", 0.6),),
        procedures=(("thrombolysis", 0.1),),
        finding="stroke",
        los=(8, 16),
        mortality=0.04,
    ),
    P(
        "ami",
        (("I21.900", "急性心肌梗死", 1.0),),
        afebrile=("突发胸痛{h}小时，伴大汗", "胸骨后压榨样疼痛{h}小时"),
        outpatient=(0, 0, 0.1, 0.4),
        inpatient=(0, 0, 0.5, 2),
        min_age=35,
        department="心血管内科",
        emergency_share=0.95,
        labs=(("cbc", 0.9), ("biochem", 0.9)),
        procedures=(("ptca", 0.6), ("stent", 0.6)),
        drugs=(("aspirin", 0.8), ("clopidogrel", 0.8)),
        los=(7, 12),
        mortality=0.07,
    ),
    P(
        "appendicitis",
        (("K37.x00", "阑尾炎", 1.0),),
        afebrile=("转移性右下腹痛{h}小时，伴恶心",),
        febrile=("右下腹痛{d}天，发热",),
        fever_share=0.3,
        fever_range=(37.4, 38.6),
        outpatient=(0.1, 1, 1, 0.4),
        inpatient=(0.3, 2, 2, 0.5),
        min_age=3,
        department="普通外科",
        emergency_share=0.5,
        labs=(("cbc", 0.95),),
        exams=(("abd_us", 0.6),),
        procedures=(("appendectomy", 0.9),),
        lab_profile="bacterial",
        los=(4, 7),
    ),
    P(
        "cholecystitis",
        (("K81.000", "急性胆囊炎", 1.0),),
        afebrile=("右上腹痛{d}天，伴恶心呕吐，无发热",),
        febrile=("右上腹痛伴发热{d}天",),
        fever_share=0.3,
        fever_range=(37.5, 38.8),
        outpatient=(0, 0, 1, 1),
        inpatient=(0, 0, 1.5, 1.5),
        min_age=20,
        department="普通外科",
        labs=(("cbc", 0.9), ("biochem", 0.8)),
        exams=(("abd_us", 0.9),),
        procedures=(("cholecystectomy", 0.7),),
        finding="cholecystitis",
        lab_profile="bacterial",
        los=(5, 9),
    ),
    P(
        "hip_fracture",
        (("S72.000", "股骨颈骨折", 1.0),),
        afebrile=("摔倒致右髋部疼痛、活动受限{h}小时",),
        outpatient=(0, 0, 0.1, 0.5),
        inpatient=(0, 0, 0.3, 2),
        min_age=50,
        department="骨科",
        emergency_share=0.7,
        exams=(("hip_dr", 0.95),),
        procedures=(("hip_replacement", 0.5), ("hemiarthroplasty", 0.3)),
        finding="fracture",
        los=(10, 16),
        mortality=0.01,
    ),
    P(
        "delivery",
        (("O80.000", "单胎顺产", 0.62), ("O82.000", "经选择性剖宫产术的分娩", 0.38)),
        afebrile=("停经{g}周，下腹阵痛{h}小时", "孕{g}周，见红{h}小时"),
        sex="2",
        min_age=18,
        max_age=46,
        condition="PREG_DELIVERY",
        department="产科",
        labs=(("cbc", 0.95),),
        exams=(("ob_us", 0.8),),
        finding="pregnancy",
        los=(3, 6),
    ),
)
BY_KEY: dict[str, Presentation] = {p.key: p for p in PRESENTATIONS}

# Chronic and other conditions a person carries: (key, ICD-10 code, name).
CONDITION_DX: dict[str, tuple[str, str]] = {
    "HTN": ("I10.x00x002", "高血压"),
    "DM": ("E11.900", "2型糖尿病"),
    "CHD": ("I25.103", "冠状动脉粥样硬化性心脏病"),
    "STROKE": ("I69.300", "脑梗死后遗症"),
    "COPD": ("J44.900", "慢性阻塞性肺疾病"),
    "HBV": ("B18.100", "慢性乙型病毒性肝炎"),
    "TB": ("A15.000", "肺结核"),
    "SCZ": ("F20.900", "精神分裂症"),
    "CA_LUNG": ("C34.900", "肺恶性肿瘤"),
    "CA_GASTRIC": ("C16.900", "胃恶性肿瘤"),
    "CA_LIVER": ("C22.000", "肝细胞癌"),
    "CA_ESOPH": ("C15.900", "食管恶性肿瘤"),
    "CA_BREAST": ("C50.900", "乳腺恶性肿瘤"),
    "CA_COLON": ("C18.900", "结肠恶性肿瘤"),
    "PREG": ("Z34.900", "正常妊娠监督"),
}
REVISIT: dict[str, Presentation] = {
    p.condition: p for p in PRESENTATIONS if p.condition and p.condition in CONDITION_DX
}
CANCERS = ("CA_LUNG", "CA_GASTRIC", "CA_LIVER", "CA_ESOPH", "CA_BREAST", "CA_COLON")


def assign_conditions(person: Person, rng: random.Random, day: dt.date) -> None:
    """Chronic conditions by age and sex (prevalences close to Chinese chronic-disease surveillance)."""
    age = person.age_on(day)
    male = person.sex == "1"
    c = person.conditions
    htn = 0.0 if age < 30 else 0.08 if age < 45 else 0.25 if age < 60 else 0.48 if age < 75 else 0.55
    if rng.random() < htn:
        c.append("HTN")
    dm = 0.0 if age < 30 else 0.04 if age < 45 else 0.10 if age < 60 else 0.18
    if rng.random() < dm:
        c.append("DM")
    if age >= 45 and rng.random() < (0.02 if age < 60 else 0.08) * (1.5 if "HTN" in c else 1.0):
        c.append("CHD")
    if age >= 55 and rng.random() < 0.04 * (1.6 if "HTN" in c else 1.0):
        c.append("STROKE")
    if age >= 40 and rng.random() < (0.03 if age < 60 else 0.10) * (1.5 if male else 0.6):
        c.append("COPD")
    if age >= 18 and rng.random() < 0.03:
        c.append("HBV")
    if age >= 15 and rng.random() < 0.0015:
        c.append("TB")
    if age >= 18 and rng.random() < 0.004:
        c.append("SCZ")
    if age >= 45 and rng.random() < 0.015:
        options = [k for k in CANCERS if not (k == "CA_BREAST" and male)]
        c.append(rng.choices(options, [3, 2, 2, 2, 1.5, 1.2][: len(options)])[0])
    if not male and 20 <= age <= 40 and rng.random() < 0.06:
        c.append("PREG")
    person.managed = any(k in c for k in ("HTN", "DM")) and rng.random() < 0.68


class CaseMix:
    """Draws presentations for a person on a day; cumulative weights cached per (group, sex, month, rural)."""

    REVISIT_SHARE = 0.55  # of a visit by someone with a chronic condition

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, str, int, bool], tuple[tuple[Presentation, ...], tuple[float, ...]]] = {}

    def _table(
        self, setting: str, group: int, sex: str, month: int, rural: bool
    ) -> tuple[tuple[Presentation, ...], tuple[float, ...]]:
        key = (setting, group, sex, month, rural)
        if key not in self._cache:
            chosen, weights = [], []
            for p in PRESENTATIONS:
                w = (p.outpatient if setting == "outpatient" else p.inpatient)[group] * p.season[month - 1]
                if w > 0 and (p.sex is None or p.sex == sex) and (rural or not p.rural_only) and p.condition is None:
                    chosen.append(p)
                    weights.append(w)
            self._cache[key] = (tuple(chosen), tuple(itertools.accumulate(weights)))
        return self._cache[key]

    def _draw(self, rng: random.Random, setting: str, person: Person, day: dt.date) -> Presentation:
        rural = person.occupation == "农民" or "村" in person.address
        options, cum = self._table(setting, person.age_group(day), person.sex, day.month, rural)
        for _ in range(20):
            p = options[bisect.bisect_right(cum, rng.random() * cum[-1])]
            if p.applies(person, day):
                return p
        return BY_KEY["uri"] if setting == "outpatient" else BY_KEY["pneumonia"]

    def outpatient(self, rng: random.Random, person: Person, day: dt.date) -> Presentation:
        chronic = [k for k in person.conditions if k in REVISIT]
        if chronic and rng.random() < self.REVISIT_SHARE:
            return REVISIT[rng.choice(chronic)]
        return self._draw(rng, "outpatient", person, day)

    def inpatient(self, rng: random.Random, person: Person, day: dt.date) -> Presentation:
        chronic = [k for k in person.conditions if k in REVISIT and REVISIT[k].inpatient[person.age_group(day)] > 0]
        if chronic and rng.random() < 0.5:
            return REVISIT[rng.choice(chronic)]
        return self._draw(rng, "inpatient", person, day)


@dataclass(frozen=True, slots=True)
class Complaint:
    text: str
    temperature: float | None  # the measured value when febrile (the field may still be left empty)
    febrile: bool
    symptoms: tuple[str, ...]


def render_complaint(
    p: Presentation, rng: random.Random, *, febrile: bool | None = None, template: str | None = None
) -> Complaint:
    """A chief complaint in the style doctors write (主症+时长，伴随症状，阴性症状)."""
    if febrile is None:
        febrile = bool(p.febrile) and (not p.afebrile or rng.random() < p.fever_share)
    temperature = round(rng.uniform(*p.fever_range), 1) if febrile else None
    templates = p.febrile if febrile else p.afebrile
    text = (template or rng.choice(templates)).format(
        d=rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 7)),
        n=rng.randint(3, 9),
        t=temperature or 37.0,
        ti=int(temperature or 37),
        h=rng.randint(1, 12),
        w=rng.randint(1, 4),
        m=rng.randint(1, 6),
        y=rng.randint(1, 15),
        g=rng.randint(12, 39),
    )
    if p.negations and rng.random() < 0.3:
        clause = rng.choice(p.negations)
        if clause[1:] not in text:
            text += f"，{clause}"
    symptoms = (("发热",) if febrile else ()) + p.symptoms
    return Complaint(text, temperature, febrile, symptoms)


def department_for(p: Presentation, person: Person, day: dt.date, emergency: bool) -> tuple[str, str]:
    if emergency and p.department not in ("产科",):
        name = "急诊医学科"
    elif person.age_on(day) < 14 and p.department not in ("普通外科", "骨科", "眼科", "口腔科", "皮肤科", "耳鼻咽喉科"):
        name = "儿科"
    else:
        name = p.department
    return DEPARTMENTS[name], name


def pick_dx(p: Presentation, rng: random.Random) -> tuple[str, str]:
    if len(p.dx) == 1:
        return p.dx[0][0], p.dx[0][1]
    code, name, _ = rng.choices(p.dx, [w for _, _, w in p.dx])[0]
    return code, name


def secondary_dx(
    person: Person, primary_code: str, rng: random.Random, day: dt.date, share: float = 0.45
) -> list[tuple[str, str]]:
    """Comorbidities written as secondary diagnoses (not every doctor lists them)."""
    result = []
    for key in person.conditions:
        if key in ("PREG",) or key not in CONDITION_DX:
            continue
        code, name = CONDITION_DX[key]
        if code != primary_code and rng.random() < share:
            result.append((code, name))
    if person.age_on(day) >= 55 and rng.random() < 0.08:
        result.append(("E78.500", "高脂血症"))
    return result[:4]
