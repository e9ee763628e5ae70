"""Syndrome classification of one outpatient visit (docs/domain.md §5, issue #7). Pure functions, no I/O.

``classify(chief_complaint, symptoms, temperature_c, diagnosis_codes) -> Classification`` is the one
function the surveillance stream stage and ``healthbus syndromes classify`` both call. It finds the affirmed
concepts (fever, cough, …) in the chief complaint (主诉), the structured symptom list and the temperature
field, applies the nine syndrome rules of the DOMAIN table, adds the syndromes implied by diagnosis codes,
and keeps the evidence that fired: only matched terms, codes and temperature values, never the complaint
text (surveillance.cases must not carry free text that could hold personal data).

How text is read
* NFKC first: full-width digits and punctuation fold ("３８．５" → "38.5", "，" → ",", "（－）" → "(-)"),
  and "℃" becomes "°C".
* One precompiled regular expression scans the text once, left to right. Its first alternative is a trie of
  every lexicon term (concept synonyms, negation cues, HFMD sites and lesions, the words that split a clause
  for the HFMD site rule, and a few "false friends" that must be swallowed), so at each position the
  longest term wins ("稀水样便" over "水样便", "不伴" over "不…", "无明显诱因" over "无"). Then temperature
  patterns, then clause ends. Structured symptom entries are scanned the same way, each its own clause.
* Clause ends: "，" "。" "；" ";" (after NFKC also "," and a "." not followed by a digit, i.e. the full-width
  "．") and line breaks; the end of each text or symptom entry.
* Negation: a cue (无, 不伴, 否认, 未诉, 未见, 没有, 未出现) negates every term after it up to the end of its
  clause, "伴" included ("无发热伴咳嗽" negates both: the letter of §5). A term followed directly (spaces
  allowed) by "(-)" or "阴性" ("咳嗽(-)", "皮疹阴性", "皮疹（阴性）") is negated; "(+)" / "阳性" change
  nothing. Not cues, although they begin with 无: "无明显诱因", "无诱因", "无明确诱因", "无明显原因",
  "无原因" (the standard opening "无明显诱因出现发热" affirms the fever), "无力", "无法".
* Temperatures in text, accepted in 34–43 ℃ only: after 体温 / 最高 / T / Tmax with at most four other
  characters between ("体温38.6℃", "T:38.5", "T 39.1°C", "最高体温39度", "体温最高达39.5"); any number with
  "°"/"°C"/"℃" ("38.5℃"); a number with "度" when it has decimals ("38.5度") or follows 热/烧/到/至/达/高/为
  ("发热39度", "高热40度", "烧到39度"), so an angle ("屈曲40度") is not a temperature. A stated temperature is
  a measurement: negation cues do not touch it, and it counts without a fever word. The temperature field
  counts in the same range (a typo such as 385 is ignored rather than taken as fever).
* Fever = an affirmed fever term, or a temperature ≥ 37.3 ℃ (field or text; "无发热" with a field of 38.2 is
  fever: §5 makes the measurement sufficient). ILI needs a temperature ≥ 38.0 ℃ itself, not a fever word.

HFMD pattern ("手足口" affirmed anywhere, or 疱疹/皮疹/水疱/溃疡 "mentioned for" both the mouth and the
hands or feet). A lesion is mentioned for a site when both stand affirmed in the same *segment*: a clause,
further cut at "伴" ("口腔溃疡伴手部外伤" is not a hand lesion). The pattern holds when, over the whole visit
(complaint and symptom entries), one segment pairs a lesion with the mouth and one (the same or another)
pairs a lesion with the hands or feet: "手、足、口腔疱疹", "口腔疱疹，手足皮疹", "口腔溃疡伴手掌、足底疱疹",
symptom entries "口腔疱疹" + "手足皮疹". Mouth sites: 口腔 and 口 (口唇, 口周 …) but not 伤口/切口/创口/疮口/
口服; hand/foot sites: 手 (手掌, 手心, 手指 …), 足 (足底 …), 脚 — not 手术, 不足, 足月. 咽 / 咽峡 is not the
mouth, so herpangina ("咽峡部疱疹") is no HFMD pattern.

Lexicon: docs/domain.md's synonym lists ("at least") plus a few common spellings, marked in ``_LEXICON`` below:
高烧/低烧; 轻咳/咳黄痰/咳白痰; 嗓子痛/嗓子疼/喉咙疼/咽喉肿痛/咽疼; 流清涕/流浓涕/流黄涕; 喘息/气急/憋喘;
大便稀/便稀/稀水便; 丘疹/疹子; 淤斑/淤点/齿龈出血/鼻腔出血; 颈强直/神志不清/意识不清; 眼发红/眼睛发红/
眼睛红/红眼; 黄染/皮肤发黄/眼黄. The HFMD lesion words are §5's four plus 水泡 (a common miswriting of 水疱)
and the rash synonyms (红疹, 出疹, 斑丘疹, 丘疹, 疹子): "手足出现红疹，口腔溃疡" is the pattern.

Diagnosis codes (national clinical edition, normalised like ``foundation.standards.icd10``: NFKC, strip, upper
case) imply a syndrome by prefix: a category declaration ("A09", "J09–J11") covers every code of the
category, a subcategory declaration ("B08.4", "H10.3") every code beginning with it ("B08.401"). A missing
dot is tolerated ("B084"). Codes are not checked for validity here: the quality stage does that.

Speed: one regex scan per text plus a dict look-up per matched term; nothing is memoised.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

CLASSIFIER_VERSION = "2026.11.1"  # bump when a definition or the lexicon changes: cases name the version that made them
FEVER_MIN_C = 37.3  # fever: a temperature ≥ 37.3 ℃ (docs/domain.md §5)
ILI_MIN_C = 38.0  # ILI: a temperature ≥ 38.0 ℃
PLAUSIBLE_C = (34.0, 43.0)  # temperatures outside are typos or not temperatures


class Syndrome(str, Enum):
    """The nine syndromes of docs/domain.md §5; the value is the code, ``zh`` the Chinese name."""

    zh: str

    def __new__(cls, code: str, zh: str) -> Syndrome:
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.zh = zh
        return obj

    FEVER_RESP = "FEVER_RESP", "发热呼吸道症候群"
    ILI = "ILI", "流感样病例"
    DIARRHEA = "DIARRHEA", "腹泻症候群"
    FEVER_RASH = "FEVER_RASH", "发热伴出疹症候群"
    FEVER_HEMORRHAGE = "FEVER_HEMORRHAGE", "发热伴出血症候群"
    ENCEPHALITIS = "ENCEPHALITIS", "脑炎脑膜炎症候群"
    HFMD = "HFMD", "手足口症候群"
    CONJUNCTIVITIS = "CONJUNCTIVITIS", "急性结膜炎症候群"
    JAUNDICE = "JAUNDICE", "黄疸症候群"


class Concept(str, Enum):
    FEVER = "FEVER"
    COUGH = "COUGH"
    SORE_THROAT = "SORE_THROAT"
    RUNNY_NOSE = "RUNNY_NOSE"
    DYSPNOEA = "DYSPNOEA"
    DIARRHOEA = "DIARRHOEA"
    VOMITING = "VOMITING"
    HEADACHE = "HEADACHE"
    RASH = "RASH"
    HFMD_PATTERN = "HFMD_PATTERN"
    BLEEDING = "BLEEDING"
    NEUROLOGICAL = "NEUROLOGICAL"
    RED_EYE = "RED_EYE"
    JAUNDICE = "JAUNDICE"


RESPIRATORY = frozenset({Concept.COUGH, Concept.SORE_THROAT, Concept.RUNNY_NOSE, Concept.DYSPNOEA})


@dataclass(frozen=True, slots=True)
class Evidence:
    """One thing that fired. ``kind``: "text" (the chief complaint), "symptom_list", "temperature" (the
    field) or "diagnosis". ``term``: the matched synonym as written (after NFKC), "口腔/疱疹" (site/lesion)
    for the HFMD site rule, the temperature ("38.6"), or the diagnosis code. ``concept``: the concept it
    affirms (None for a diagnosis code). ``syndromes``: the syndromes of the classification it supports."""

    kind: str
    term: str
    concept: Concept | None
    syndromes: tuple[Syndrome, ...]


@dataclass(frozen=True, slots=True)
class Classification:
    syndromes: tuple[Syndrome, ...]  # sorted by code
    concepts: frozenset[Concept]  # affirmed
    max_temperature: float | None  # highest plausible temperature found (field or text), ℃
    evidence: tuple[Evidence, ...]  # what supports the syndromes (complaint order, then symptoms, field, codes)


# -- lexicon -----------------------------------------------------------------------------------------
C = Concept
_LEXICON: dict[Concept, tuple[str, ...]] = {
    C.FEVER: ("发热", "发烧", "高热", "低热", "体温升高") + ("高烧", "低烧"),
    C.COUGH: ("咳嗽", "干咳", "咳痰") + ("轻咳", "咳黄痰", "咳白痰"),
    C.SORE_THROAT: ("咽痛", "咽喉痛", "喉咙痛", "咽部疼痛") + ("嗓子痛", "嗓子疼", "喉咙疼", "咽喉肿痛", "咽疼"),
    C.RUNNY_NOSE: ("流涕", "流鼻涕", "鼻塞") + ("流清涕", "流浓涕", "流黄涕"),
    C.DYSPNOEA: ("气促", "呼吸困难", "气喘") + ("喘息", "气急", "憋喘"),
    C.DIARRHOEA: ("腹泻", "拉肚子", "稀便", "水样便", "稀水样便", "解稀便") + ("大便稀", "便稀", "稀水便"),
    C.VOMITING: ("呕吐", "恶心呕吐"),
    C.HEADACHE: ("头痛", "头疼"),
    C.RASH: ("皮疹", "出疹", "斑丘疹", "红疹") + ("丘疹", "疹子"),
    C.HFMD_PATTERN: ("手足口",),
    C.BLEEDING: ("瘀斑", "瘀点", "出血点", "牙龈出血", "鼻出血", "鼻衄", "皮下出血")
    + ("淤斑", "淤点", "齿龈出血", "鼻腔出血"),
    C.NEUROLOGICAL: ("颈项强直", "颈部僵硬", "抽搐", "惊厥", "意识模糊", "意识障碍", "嗜睡", "昏迷")
    + ("颈强直", "神志不清", "意识不清"),
    C.RED_EYE: ("眼红", "双眼发红", "结膜充血") + ("眼发红", "眼睛发红", "眼睛红", "红眼"),
    C.JAUNDICE: ("黄疸", "皮肤黄染", "巩膜黄染", "眼睛发黄") + ("黄染", "皮肤发黄", "眼黄"),
}
del C
NEGATION_CUES = ("无", "不伴", "否认", "未诉", "未见", "没有", "未出现")
_NOT_CUES = ("无明显诱因", "无诱因", "无明确诱因", "无明显原因", "无原因", "无力", "无法")
_LESIONS_ONLY = ("疱疹", "水疱", "溃疡", "水泡")  # HFMD lesions that are not a rash concept
_MOUTH = ("口腔", "口")
_LIMB = ("手", "足", "脚")
_NOT_SITES = ("伤口", "切口", "创口", "疮口", "口服", "手术", "不足", "足月")
_SEGMENT_BREAK = ("伴",)  # cuts a clause into segments for the HFMD site rule ("不伴" stays a cue)

# Term roles, one small int tuple per term: (role, concept, lesion).
_CUE, _SKIP, _BREAK, _MOUTH_SITE, _LIMB_SITE, _TERM = range(6)
_TERMS: dict[str, tuple[int, Concept | None, bool]] = {}


def _add(words: Iterable[str], role: int, concept: Concept | None = None, lesion: bool = False) -> None:
    for w in words:
        if w in _TERMS:
            raise ValueError(f"lexicon term {w!r} declared twice")
        _TERMS[w] = (role, concept, lesion)


for _concept, _words in _LEXICON.items():
    _add(_words, _TERM, _concept, lesion=_concept is Concept.RASH)
_add(NEGATION_CUES, _CUE)
_add(_NOT_CUES + _NOT_SITES, _SKIP)
_add(_LESIONS_ONLY, _TERM, None, lesion=True)  # the rash words are lesions too (above)
_add(_MOUTH, _MOUTH_SITE)
_add(_LIMB, _LIMB_SITE)
_add(_SEGMENT_BREAK, _BREAK)


def _trie_regex(words: Iterable[str]) -> str:
    """An alternation of ``words`` as a character trie; at each node a longer word is tried first."""
    root: dict = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        alts = [re.escape(ch) + build(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        inner = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{inner})?" if "" in node else inner

    return build(root)


# Groups: 1 term, 2 its "(-)"/"阴性" suffix, 3–5 a temperature (after a keyword / with ° / with 度), 6 a clause end.
_NUM = r"(\d{2}(?:\.\d+)?)(?![\d])"
_SCAN = re.compile(
    "(" + _trie_regex(_TERMS) + r")(\s*(?:\(\s*[-−—–]\s*\)|\(?阴性\)?))?"
    r"|(?<![A-Za-z])(?:体温|最高|[Tt](?:max)?)[^\d,。;\n\r]{0,4}?" + _NUM + r"(?:\s*(?:°C?|度))?"
    r"|(?<![\d.])" + _NUM + r"\s*°"
    r"|(?:(?<=[热烧到至达高为])\s?|(?<![\d.])(?=\d{2}\.\d))" + _NUM + r"\s*度"
    r"|([,。;\n\r]|\.(?!\d))"
)


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _plausible(t: float) -> bool:
    return PLAUSIBLE_C[0] <= t <= PLAUSIBLE_C[1]


def _scan(text: str, kind: str, hits: list, temps: list, sites: list) -> None:
    """Append the affirmed terms (kind, term, concept), temperatures (kind, value, term) and HFMD site
    pairs (kind, "mouth"/"limb", site, lesion) of one text."""
    terms = _TERMS
    negated = False
    lesion = mouth = limb = None  # the current segment's first affirmed lesion and sites
    for term, suffix, t1, t2, t3, end in _SCAN.findall(text):
        if term:
            role, concept, is_lesion = terms[term]
            if role == _TERM:
                if negated or suffix:
                    continue
                if concept is not None:
                    hits.append((kind, term, concept))
                if is_lesion and lesion is None:
                    lesion = term
            elif role == _CUE:
                negated = True
            elif role == _MOUTH_SITE:
                mouth = mouth or term
            elif role == _LIMB_SITE:
                limb = limb or term
            elif role == _BREAK:
                if lesion is not None:
                    _close_segment(kind, lesion, mouth, limb, sites)
                lesion = mouth = limb = None
        elif end:
            if lesion is not None:
                _close_segment(kind, lesion, mouth, limb, sites)
            negated = False
            lesion = mouth = limb = None
        else:
            number = t1 or t2 or t3
            value = float(number)
            if _plausible(value):
                temps.append((kind, value, number))
    if lesion is not None:
        _close_segment(kind, lesion, mouth, limb, sites)


def _close_segment(kind: str, lesion: str, mouth: str | None, limb: str | None, sites: list) -> None:
    if mouth is not None:
        sites.append((kind, "mouth", mouth, lesion))
    if limb is not None:
        sites.append((kind, "limb", limb, lesion))


# -- diagnosis codes ---------------------------------------------------------------------------------
S = Syndrome
_DX_DECLARATIONS: tuple[tuple[Syndrome, tuple[str, ...]], ...] = (
    (S.DIARRHEA, ("A00-A09",)),
    (S.HFMD, ("B08.4",)),
    (S.FEVER_RASH, ("B05", "B06")),
    (S.FEVER_HEMORRHAGE, ("A98.5", "A93.8", "A91")),
    (S.ENCEPHALITIS, ("A83-A89", "G00-G05")),
    (S.CONJUNCTIVITIS, ("H10.3", "B30")),
    (S.JAUNDICE, ("B15-B17",)),
    (S.FEVER_RESP, ("J09-J11",)),
)
del S
_DX_CATEGORY: dict[str, Syndrome] = {}  # "A09" → DIARRHEA
_DX_SUBCATEGORY: dict[str, dict[str, Syndrome]] = {}  # "B08" → {"4": HFMD}
for _syndrome, _specs in _DX_DECLARATIONS:
    for _spec in _specs:
        if "." in _spec:
            _DX_SUBCATEGORY.setdefault(_spec[:3], {})[_spec[4]] = _syndrome
            continue
        _first, _, _last = _spec.partition("-")
        _last = _last or _first
        for _n in range(int(_first[1:]), int(_last[1:]) + 1):
            _DX_CATEGORY[f"{_first[0]}{_n:02d}"] = _syndrome
_CODE = re.compile(r"([A-Z][0-9]{2})(?:\.?([0-9X])[0-9A-Z]{0,7})?")


def diagnosis_syndrome(code: str) -> tuple[Syndrome, str] | None:
    """The syndrome a diagnosis code implies by prefix, with the code as matched (normalised), or None."""
    if not isinstance(code, str):
        return None
    code = (code if code.isascii() else _normalise(code)).strip().upper()
    m = _CODE.match(code)
    if m is None:
        return None
    category, sub = m.group(1), m.group(2)
    syndrome = _DX_CATEGORY.get(category)
    if syndrome is None and sub is not None:
        syndrome = _DX_SUBCATEGORY.get(category, {}).get(sub)
    return None if syndrome is None else (syndrome, m.group(0))


# -- classification ----------------------------------------------------------------------------------
_FEVER, _RASH, _HFMD, _BLEEDING, _NEURO = (
    Concept.FEVER,
    Concept.RASH,
    Concept.HFMD_PATTERN,
    Concept.BLEEDING,
    Concept.NEUROLOGICAL,
)
_HEAD_VOMIT = frozenset({Concept.HEADACHE, Concept.VOMITING})
_RASH_LIKE = frozenset({_RASH, _HFMD})
_ILI_SIGNS = frozenset({Concept.COUGH, Concept.SORE_THROAT})
_SINGLE = (
    (Concept.DIARRHOEA, Syndrome.DIARRHEA),
    (_HFMD, Syndrome.HFMD),
    (Concept.RED_EYE, Syndrome.CONJUNCTIVITIS),
    (Concept.JAUNDICE, Syndrome.JAUNDICE),
)
_ORDER = {s: i for i, s in enumerate(sorted(Syndrome, key=lambda s: s.value))}  # by code, as syndromes_field
_NONE: frozenset[Any] = frozenset()


def classify(
    chief_complaint: str | None,
    symptoms: Sequence[str] = (),
    temperature_c: float | None = None,
    diagnosis_codes: Sequence[str] = (),
) -> Classification:
    """The syndromes of one visit (docs/domain.md §5) with the concepts and evidence behind them."""
    hits: list[tuple[str, str, Concept]] = []
    temps: list[tuple[str, float, str]] = []
    sites: list[tuple[str, str, str, str]] = []
    if chief_complaint:
        _scan(_normalise(chief_complaint), "text", hits, temps, sites)
    for entry in symptoms:
        if entry:
            _scan(_normalise(entry), "symptom_list", hits, temps, sites)
    if temperature_c is not None and _plausible(temperature_c):
        temps.append(("temperature", float(temperature_c), f"{temperature_c:g}"))

    support: dict[Syndrome, set[Concept]] = {}  # each fired rule → the concepts it rests on
    evidence: list[Evidence] = []
    seen: set[tuple[str, str]] = set()
    max_t = None
    concepts: set[Concept] | frozenset[Concept] = _NONE
    if hits or temps or sites:
        concepts = {h[2] for h in hits}
        for t in temps:
            if max_t is None or t[1] > max_t:
                max_t = t[1]
        if max_t is not None and max_t >= FEVER_MIN_C:
            concepts.add(_FEVER)
        hfmd_sites: list[tuple[str, str]] = []  # (kind, "site/lesion") when the site rule holds
        if sites and any(s[1] == "mouth" for s in sites) and any(s[1] == "limb" for s in sites):
            concepts.add(_HFMD)
            hfmd_sites = [(s[0], f"{s[2]}/{s[3]}") for s in sites]
        if _FEVER in concepts:
            respiratory = concepts & RESPIRATORY
            if respiratory:
                support[Syndrome.FEVER_RESP] = respiratory | {_FEVER}
            rash = concepts & _RASH_LIKE
            if rash:
                support[Syndrome.FEVER_RASH] = rash | {_FEVER}
            if _BLEEDING in concepts:
                support[Syndrome.FEVER_HEMORRHAGE] = {_FEVER, _BLEEDING}
            brain = {_NEURO} if _NEURO in concepts else set()
            if _HEAD_VOMIT <= concepts:
                brain |= _HEAD_VOMIT
            if brain:
                brain.add(_FEVER)
                support[Syndrome.ENCEPHALITIS] = brain
        if max_t is not None and max_t >= ILI_MIN_C:
            signs = concepts & _ILI_SIGNS
            if signs:
                support[Syndrome.ILI] = signs
        for concept, syndrome in _SINGLE:
            if concept in concepts:
                support[syndrome] = {concept}
        if support:
            for kind, term, concept in hits:
                if (kind, term) not in seen:
                    seen.add((kind, term))
                    backs = tuple(s for s, cs in support.items() if concept in cs)
                    if backs:
                        evidence.append(Evidence(kind, term, concept, backs))
            if hfmd_sites:
                hfmd_backs = tuple(s for s, cs in support.items() if _HFMD in cs)
                for kind, term in hfmd_sites:
                    if (kind, term) not in seen:
                        seen.add((kind, term))
                        evidence.append(Evidence(kind, term, _HFMD, hfmd_backs))
            for kind, value, term in temps:
                if value >= FEVER_MIN_C and (kind, term) not in seen:
                    seen.add((kind, term))
                    backs = tuple(
                        s for s, cs in support.items() if _FEVER in cs or (s is Syndrome.ILI and value >= ILI_MIN_C)
                    )
                    if backs:
                        evidence.append(Evidence(kind, term, _FEVER, backs))
    fired = set(support)
    for code in diagnosis_codes:
        implied = diagnosis_syndrome(code)
        if implied is not None:
            fired.add(implied[0])
            if ("diagnosis", implied[1]) not in seen:
                seen.add(("diagnosis", implied[1]))
                evidence.append(Evidence("diagnosis", implied[1], None, (implied[0],)))
    syndromes = tuple(sorted(fired, key=_ORDER.__getitem__)) if len(fired) > 1 else tuple(fired)
    return Classification(syndromes, frozenset(concepts), max_t, tuple(evidence))


def syndromes_field(classification: Classification) -> str:
    """The syndrome codes sorted and joined by ";" ("" when none): the CLI's ``syndromes`` column."""
    return ";".join(sorted(s.value for s in classification.syndromes))
