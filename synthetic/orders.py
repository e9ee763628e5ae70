"""What gets ordered for a patient and what comes back: lab panels (values, units, reference ranges and
H/L flags that agree with the range), imaging reports in Chinese, prescriptions (ATC-coded drugs), and
ICD-9-CM-3 procedures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from synthetic.population import Person


@dataclass(frozen=True, slots=True)
class LabItem:
    code: str
    name: str
    unit: str | None
    low: float | None  # reference range (men; women below when different)
    high: float | None
    decimals: int = 1
    low_f: float | None = None
    high_f: float | None = None
    qualitative: bool = False

    def reference(self, sex: str) -> tuple[float | None, float | None]:
        if sex == "2" and (self.low_f is not None or self.high_f is not None):
            return self.low_f, self.high_f
        return self.low, self.high


L = LabItem
LAB_ITEMS: dict[str, LabItem] = {
    i.code: i
    for i in (
        L("WBC", "白细胞计数", "10^9/L", 3.5, 9.5, 2),
        L("RBC", "红细胞计数", "10^12/L", 4.3, 5.8, 2, 3.8, 5.1),
        L("HGB", "血红蛋白", "g/L", 130, 175, 0, 115, 150),
        L("PLT", "血小板计数", "10^9/L", 125, 350, 0),
        L("NEUT%", "中性粒细胞百分比", "%", 40, 75, 1),
        L("LYMPH%", "淋巴细胞百分比", "%", 20, 50, 1),
        L("CRP", "C反应蛋白", "mg/L", 0, 10, 1),
        L("PCT", "降钙素原", "ng/mL", 0, 0.5, 2),
        L("GLU", "葡萄糖", "mmol/L", 3.9, 6.1, 2),
        L("HbA1c", "糖化血红蛋白", "%", 4.0, 6.0, 1),
        L("ALT", "丙氨酸氨基转移酶", "U/L", 9, 50, 0, 7, 40),
        L("AST", "天门冬氨酸氨基转移酶", "U/L", 15, 40, 0, 13, 35),
        L("TBIL", "总胆红素", "μmol/L", 0, 21, 1),
        L("CREA", "肌酐", "μmol/L", 57, 111, 0, 41, 81),
        L("UREA", "尿素", "mmol/L", 3.1, 8.0, 2),
        L("HBV-DNA", "乙型肝炎病毒DNA定量", "IU/mL", None, 100, 0),
        L("FluA-Ag", "甲型流感病毒抗原", None, None, None, qualitative=True),
        L("FluB-Ag", "乙型流感病毒抗原", None, None, None, qualitative=True),
        L("NoV-Ag", "诺如病毒抗原", None, None, None, qualitative=True),
        L("OB", "粪便隐血试验", None, None, None, qualitative=True),
        L("U-LEU", "尿白细胞酯酶", None, None, None, qualitative=True),
        L("U-NIT", "尿亚硝酸盐", None, None, None, qualitative=True),
        L("U-PRO", "尿蛋白", None, None, None, qualitative=True),
        L("HBsAg", "乙型肝炎病毒表面抗原", None, None, None, qualitative=True),
        L("SFTSV-RNA", "新型布尼亚病毒核酸", None, None, None, qualitative=True),
    )
}
# Panel -> (report title, specimen, item codes).
LAB_PANELS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cbc": ("血常规", "全血", ("WBC", "RBC", "HGB", "PLT", "NEUT%", "LYMPH%")),
    "crp": ("C反应蛋白", "全血", ("CRP",)),
    "pct": ("降钙素原", "血清", ("PCT",)),
    "biochem": ("肝肾功能+血糖", "血清", ("GLU", "ALT", "AST", "TBIL", "CREA", "UREA")),
    "glucose": ("空腹血糖", "血清", ("GLU",)),
    "hba1c": ("糖化血红蛋白", "全血", ("HbA1c",)),
    "flu": ("甲乙型流感病毒抗原检测", "鼻咽拭子", ("FluA-Ag", "FluB-Ag")),
    "noro": ("诺如病毒抗原检测", "粪便", ("NoV-Ag",)),
    "stool": ("粪便常规+隐血", "粪便", ("OB",)),
    "urine": ("尿常规", "尿液", ("U-LEU", "U-NIT", "U-PRO")),
    "hbv": ("乙肝病毒学检测", "血清", ("HBsAg", "HBV-DNA")),
    "sfts": ("新型布尼亚病毒核酸检测", "血清", ("SFTSV-RNA",)),
}
# Profile -> item -> (low, high) abnormal range, or positive probability for qualitative items.
LAB_PROFILES: dict[str, dict[str, tuple[float, float] | float]] = {
    "normal": {},
    "viral": {"WBC": (3.0, 8.5), "LYMPH%": (35, 60), "NEUT%": (30, 60), "CRP": (1, 15)},
    "influenza": {"WBC": (2.8, 7.5), "CRP": (3, 25), "FluA-Ag": 0.65, "FluB-Ag": 0.08},
    "bacterial": {"WBC": (10.5, 19.0), "NEUT%": (76, 92), "CRP": (25, 160), "PCT": (0.3, 5.0)},
    "sfts": {"WBC": (1.0, 3.4), "PLT": (15, 95), "ALT": (55, 320), "AST": (80, 600), "SFTSV-RNA": 0.85},
    "diabetes": {"GLU": (7.2, 14.5), "HbA1c": (6.8, 10.5)},
    "hepatitis": {"ALT": (60, 420), "AST": (50, 300), "TBIL": (18, 90), "HBsAg": 0.95, "HBV-DNA": (500, 5e6)},
    "anaemia": {"HGB": (68, 105), "RBC": (2.8, 3.8)},
    "uti": {"U-LEU": 0.9, "U-NIT": 0.5, "WBC": (9.0, 14.0)},
    "norovirus": {"NoV-Ag": 0.7, "WBC": (6.0, 12.0)},
}
_BACKGROUND_POSITIVE = {"OB": 0.04, "U-PRO": 0.05, "HBsAg": 0.06, "FluA-Ag": 0.03, "FluB-Ag": 0.01}


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def lab_items(panel: str, profile: str, person: Person, rng: random.Random) -> list[dict[str, object]]:
    """The items of one report: numeric values with flags consistent with the reference range."""
    _, _, codes = LAB_PANELS[panel]
    overrides = dict(LAB_PROFILES.get(profile, {}))
    if "DM" in person.conditions:
        overrides.setdefault("GLU", (6.5, 13.0))
        overrides.setdefault("HbA1c", (6.4, 9.5))
    if "HBV" in person.conditions:
        overrides.setdefault("HBsAg", 0.97)
    rows = []
    for seq, code in enumerate(codes, 1):
        item = LAB_ITEMS[code]
        row: dict[str, object] = {"seq": seq, "item_code": code, "item_name": item.name, "unit": item.unit}
        if item.qualitative:
            positive = rng.random() < float(overrides.get(code, _BACKGROUND_POSITIVE.get(code, 0.0)))  # type: ignore[arg-type]
            row.update(
                result_text="阳性" if positive else "阴性",
                numeric_value=None,
                reference_range="阴性",
                reference_low=None,
                reference_high=None,
                abnormal_flag="A" if positive else "N",
            )
            rows.append(row)
            continue
        low, high = item.reference(person.sex)
        override = overrides.get(code)
        if isinstance(override, tuple):
            value = rng.uniform(*override)
        elif low is None:  # an upper limit only (viral load): undetectable or low
            value = rng.uniform(0, (high or 1) * 0.8)
        else:
            value = rng.gauss((low + (high or low)) / 2, ((high or low) - low) / 4.5)
            value = max(value, 0.0 if low == 0 else low * 0.6)
        value = round(value, item.decimals)
        flag = "H" if high is not None and value > high else "L" if low is not None and value < low else "N"
        if low is None:
            text_range = f"<{_fmt(high or 0, item.decimals)}"
        else:
            text_range = f"{_fmt(low, item.decimals)}-{_fmt(high or 0, item.decimals)}"
        row.update(
            result_text=_fmt(value, item.decimals),
            numeric_value=float(value),
            reference_range=text_range,
            reference_low=low,
            reference_high=high,
            abnormal_flag=flag,
        )
        rows.append(row)
    return rows


# Exams: key -> (modality, item code, item name, body part, {finding: ((findings, impression), …)}).
EXAMS: dict[str, tuple[str, str, str, str, dict[str, tuple[tuple[str, str], ...]]]] = {
    "chest_dr": (
        "DR",
        "DR0101",
        "胸部正位片",
        "胸部",
        {
            "normal": (
                ("双肺纹理清晰，未见明显实变影。心影大小形态正常。双膈面光整，肋膈角锐利。", "心肺膈未见明显异常。"),
                ("双肺纹理稍增多，未见明显实变影。心影不大。", "双肺纹理增多，请结合临床。"),
            ),
            "pneumonia": (
                ("右下肺野见斑片状模糊影，边缘不清。心影大小正常。", "右下肺炎症，建议治疗后复查。"),
                ("双肺纹理增粗紊乱，双下肺见散在斑片状阴影。", "双下肺炎症。"),
            ),
            "copd": (("双肺透亮度增高，肺纹理稀疏，膈肌低平。", "慢性支气管炎、肺气肿征象。"),),
        },
    ),
    "chest_ct": (
        "CT",
        "CT0201",
        "胸部CT平扫",
        "胸部",
        {
            "normal": (("双肺野清晰，未见明确结节及实变影。纵隔内未见肿大淋巴结。", "胸部CT平扫未见明显异常。"),),
            "pneumonia": (
                ("右肺下叶见片状磨玻璃密度影及实变影，内见支气管充气征。", "右肺下叶感染性病变，建议治疗后复查。"),
            ),
            "copd": (("双肺透亮度增高，可见多发肺大泡，支气管壁增厚。", "慢性阻塞性肺疾病CT表现，肺气肿。"),),
            "lung_cancer": (
                (
                    "右肺上叶见不规则软组织肿块影，大小约3.2cm×2.8cm，边缘分叶，可见毛刺，纵隔淋巴结肿大。",
                    "右肺上叶占位，考虑肺癌可能，伴纵隔淋巴结转移。",
                ),
            ),
            "tuberculosis": (
                ("左肺上叶尖后段见斑片状、条索状影，内见小空洞及钙化灶。", "左肺上叶继发性肺结核可能，请结合临床。"),
            ),
        },
    ),
    "head_ct": (
        "CT",
        "CT0101",
        "头颅CT平扫",
        "头部",
        {
            "normal": (("脑实质内未见明显异常密度影，脑室系统未见扩张，中线结构居中。", "颅脑CT平扫未见明显异常。"),),
            "stroke": (
                ("左侧基底节区见片状低密度影，边界模糊，邻近脑室受压不明显，中线结构居中。", "左侧基底节区脑梗死。"),
                ("右侧额顶叶见大片状低密度影，脑沟变浅。", "右侧额顶叶急性脑梗死可能，建议MRI检查。"),
            ),
        },
    ),
    "abd_us": (
        "US",
        "US0301",
        "腹部彩超(肝胆胰脾)",
        "腹部",
        {
            "normal": (("肝脏形态正常，实质回声均匀，胆囊壁光滑，胰腺及脾脏未见异常。", "肝胆胰脾未见明显异常。"),),
            "hepatitis": (
                ("肝脏大小正常，实质回声增粗，分布欠均匀，门静脉内径正常。", "肝实质回声增粗，请结合临床。"),
            ),
            "liver_cancer": (
                ("肝右叶见一低回声团块，大小约5.1cm×4.3cm，边界欠清，内见血流信号。", "肝右叶实性占位，考虑肝癌。"),
            ),
            "cholecystitis": (("胆囊增大，壁增厚毛糙约0.5cm，腔内见多个强回声伴声影。", "胆囊炎，胆囊多发结石。"),),
        },
    ),
    "ob_us": (
        "US",
        "US0501",
        "产科超声",
        "盆腔",
        {
            "normal": (("宫内见胎儿回声，胎心搏动规律。", "宫内妊娠，单活胎。"),),
            "pregnancy": (
                (
                    "宫内单胎，头位，双顶径约9.2cm，股骨长约7.0cm，胎心率约140次/分，羊水指数12cm。",
                    "宫内妊娠，单活胎，头位。",
                ),
            ),
        },
    ),
    "cardiac_us": (
        "US",
        "US0401",
        "心脏彩超",
        "心脏",
        {
            "normal": (
                ("各房室大小正常，室壁运动协调，瓣膜形态及启闭未见异常。", "心脏结构及功能未见明显异常。"),
                ("左心房稍大，左室舒张功能减低，EF 58%。", "左房增大，左室舒张功能减低。"),
            ),
        },
    ),
    "wrist_dr": (
        "DR",
        "DR0301",
        "腕关节正侧位片",
        "腕部",
        {
            "normal": (("腕关节诸骨未见明显骨折征象。", "腕关节未见明显异常。"),),
            "fracture": (("桡骨远端骨皮质不连续，可见骨折线，远折端向背侧移位。", "桡骨远端骨折(Colles骨折)。"),),
        },
    ),
    "hip_dr": (
        "DR",
        "DR0401",
        "髋关节正位片",
        "髋部",
        {
            "normal": (("双髋关节间隙正常，未见骨折征象。", "双髋关节未见明显异常。"),),
            "fracture": (("右股骨颈骨皮质断裂，断端错位，股骨头未见明显坏死。", "右股骨颈骨折。"),),
        },
    ),
    "knee_dr": (
        "DR",
        "DR0501",
        "膝关节正侧位片",
        "膝部",
        {
            "normal": (("双膝关节间隙变窄，关节边缘骨质增生。", "双膝关节退行性变。"),),
        },
    ),
    "lumbar_ct": (
        "CT",
        "CT0401",
        "腰椎CT平扫",
        "腰部",
        {
            "normal": (
                ("L4/5椎间盘向后突出，硬膜囊受压，L5/S1椎间盘膨出。", "L4/5椎间盘突出，L5/S1椎间盘膨出。"),
                ("腰椎生理曲度变直，椎体边缘骨质增生。", "腰椎退行性变。"),
            ),
        },
    ),
    "gastroscopy": (
        "ES",
        "ES0101",
        "电子胃镜",
        "上消化道",
        {
            "normal": (("食管黏膜光滑，胃窦黏膜红白相间，以红为主，幽门圆。", "慢性非萎缩性胃炎。"),),
            "gastritis": (("胃窦黏膜充血水肿，散在糜烂。", "慢性非萎缩性胃炎伴糜烂。"),),
            "gastric_cancer": (("胃窦小弯侧见一溃疡型肿物，约2.5cm，底覆污秽苔，周边堤样隆起。", "胃窦癌？待病理。"),),
            "oesophageal_cancer": (("距门齿30cm处见环周不规则隆起，管腔狭窄，内镜通过困难。", "食管癌？已取活检。"),),
        },
    ),
}


def exam_report(key: str, finding: str, rng: random.Random) -> tuple[str, str, str, str, str, str]:
    """(modality, item code, item name, body part, findings, impression)."""
    modality, code, name, body, findings = EXAMS[key]
    options = findings.get(finding) or findings["normal"]
    if finding != "normal" and finding in findings and rng.random() < 0.15:
        options = findings["normal"]  # not every case shows on every exam
    text, impression = rng.choice(options)
    return modality, code, name, body, text, impression


@dataclass(frozen=True, slots=True)
class Drug:
    name: str
    atc: str | None  # Chinese patent medicines (中成药) have no ATC code
    dose: float
    unit: str
    frequency: str  # qd bid tid qn prn st
    route: str
    days: tuple[int, int]
    per_day: float  # dose units per day, for the dispensed quantity


D = Drug
DRUGS: dict[str, Drug] = {
    "amlodipine": D("苯磺酸氨氯地平片", "C08CA01", 5, "mg", "qd", "口服", (14, 30), 1),
    "nifedipine": D("硝苯地平控释片", "C08CA05", 30, "mg", "qd", "口服", (14, 30), 1),
    "valsartan": D("缬沙坦胶囊", "C09CA03", 80, "mg", "qd", "口服", (14, 30), 1),
    "irbesartan": D("厄贝沙坦片", "C09CA04", 150, "mg", "qd", "口服", (14, 30), 1),
    "metoprolol": D("酒石酸美托洛尔片", "C07AB02", 25, "mg", "bid", "口服", (14, 30), 2),
    "metformin": D("盐酸二甲双胍片", "A10BA02", 0.5, "g", "tid", "口服", (14, 30), 3),
    "acarbose": D("阿卡波糖片", "A10BF01", 50, "mg", "tid", "口服", (14, 30), 3),
    "gliclazide": D("格列齐特缓释片", "A10BB09", 30, "mg", "qd", "口服", (14, 30), 1),
    "glargine": D("甘精胰岛素注射液", "A10AE04", 12, "U", "qn", "皮下注射", (30, 30), 12),
    "aspirin": D("阿司匹林肠溶片", "B01AC06", 100, "mg", "qd", "口服", (14, 30), 1),
    "clopidogrel": D("硫酸氢氯吡格雷片", "B01AC04", 75, "mg", "qd", "口服", (14, 30), 1),
    "atorvastatin": D("阿托伐他汀钙片", "C10AA05", 20, "mg", "qn", "口服", (14, 30), 1),
    "furosemide": D("呋塞米片", "C03CA01", 20, "mg", "qd", "口服", (7, 14), 1),
    "amoxicillin": D("阿莫西林胶囊", "J01CA04", 0.5, "g", "tid", "口服", (3, 7), 3),
    "cefuroxime": D("头孢呋辛酯片", "J01DC02", 0.25, "g", "bid", "口服", (3, 7), 2),
    "azithromycin": D("阿奇霉素片", "J01FA10", 0.5, "g", "qd", "口服", (3, 5), 1),
    "levofloxacin": D("左氧氟沙星片", "J01MA12", 0.5, "g", "qd", "口服", (3, 7), 1),
    "ceftriaxone": D("注射用头孢曲松钠", "J01DD04", 2, "g", "qd", "静脉滴注", (3, 5), 1),
    "doxycycline": D("盐酸多西环素片", "J01AA02", 0.1, "g", "bid", "口服", (5, 7), 2),
    "oseltamivir": D("磷酸奥司他韦胶囊", "J05AH02", 75, "mg", "bid", "口服", (5, 5), 2),
    "acyclovir": D("阿昔洛韦片", "J05AB01", 0.4, "g", "tid", "口服", (5, 7), 3),
    "entecavir": D("恩替卡韦片", "J05AF10", 0.5, "mg", "qd", "口服", (28, 30), 1),
    "tdf": D("富马酸替诺福韦二吡呋酯片", "J05AF07", 300, "mg", "qd", "口服", (28, 30), 1),
    "isoniazid": D("异烟肼片", "J04AC01", 0.3, "g", "qd", "口服", (28, 30), 1),
    "rifampicin": D("利福平胶囊", "J04AB02", 0.45, "g", "qd", "口服", (28, 30), 1),
    "ibuprofen": D("布洛芬缓释胶囊", "M01AE01", 0.3, "g", "bid", "口服", (2, 3), 2),
    "ibuprofen_susp": D("布洛芬混悬液", "M01AE01", 5, "ml", "prn", "口服", (2, 3), 3),
    "diclofenac": D("双氯芬酸钠缓释片", "M01AB05", 75, "mg", "qd", "口服", (5, 7), 1),
    "celecoxib": D("塞来昔布胶囊", "M01AH01", 0.2, "g", "qd", "口服", (7, 14), 1),
    "smectite": D("蒙脱石散", "A07BC05", 3, "g", "tid", "口服", (3, 3), 3),
    "ors": D("口服补液盐散(III)", "A07CA", 5.125, "g", "prn", "口服", (2, 3), 3),
    "omeprazole": D("奥美拉唑肠溶胶囊", "A02BC01", 20, "mg", "qd", "口服", (7, 14), 1),
    "ambroxol": D("盐酸氨溴索片", "R05CB06", 30, "mg", "tid", "口服", (3, 7), 3),
    "tiotropium": D("噻托溴铵吸入粉雾剂", "R03BB04", 18, "μg", "qd", "吸入", (30, 30), 1),
    "budesonide_formoterol": D("布地奈德福莫特罗吸入粉雾剂", "R03AK07", 1, "吸", "bid", "吸入", (30, 30), 2),
    "loratadine": D("氯雷他定片", "R06AX13", 10, "mg", "qd", "口服", (7, 14), 1),
    "tobramycin_eye": D("妥布霉素滴眼液", "S01AA12", 1, "滴", "qid", "滴眼", (5, 7), 4),
    "tetanus": D("破伤风抗毒素", "J06AA02", 1500, "IU", "st", "肌内注射", (1, 1), 1),
    "folic_acid": D("叶酸片", "B03BB01", 0.4, "mg", "qd", "口服", (30, 30), 1),
    "risperidone": D("利培酮片", "N05AX08", 2, "mg", "bid", "口服", (28, 30), 2),
    "lianhua": D("连花清瘟胶囊", None, 1.4, "g", "tid", "口服", (3, 5), 3),
    "kangfuxin": D("康复新液", None, 10, "ml", "tid", "口服", (3, 5), 3),
}
DRUG_INDEX: dict[str, int] = {k: i for i, k in enumerate(DRUGS)}

# ICD-9-CM-3 procedures (base codes; a national clinical edition code extends them, e.g. 74.1x01).
PROCEDURES: dict[str, tuple[str, str]] = {
    "oxygen": ("93.96", "氧疗"),
    "niv": ("93.90", "无创机械通气"),
    "coronary_angiography": ("88.56", "冠状动脉造影术"),
    "ptca": ("00.66", "经皮冠状动脉腔内血管成形术"),
    "stent": ("36.07", "药物洗脱冠状动脉支架置入术"),
    "thrombolysis": ("99.10", "静脉溶栓治疗"),
    "chemo": ("99.25", "化学治疗药物注射"),
    "bronchoscopy": ("33.24", "支气管镜下活组织检查"),
    "gastrectomy": ("43.7", "胃部分切除术伴胃空肠吻合术"),
    "colonoscopy": ("45.23", "结肠镜检查"),
    "orif_radius": ("79.32", "桡骨骨折切开复位内固定术"),
    "closed_reduction": ("79.02", "桡骨骨折闭合复位术"),
    "appendectomy": ("47.01", "腹腔镜下阑尾切除术"),
    "cholecystectomy": ("51.23", "腹腔镜下胆囊切除术"),
    "hip_replacement": ("81.51", "全髋关节置换术"),
    "hemiarthroplasty": ("81.52", "人工股骨头置换术"),
    "caesarean": ("74.1", "子宫下段剖宫产术"),
    "assisted_vaginal": ("73.59", "手法助产"),
    "episiotomy": ("73.6", "会阴切开缝合术"),
    "intubation": ("96.04", "气管插管"),
    "cpr": ("99.60", "心肺复苏"),
}
