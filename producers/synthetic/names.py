"""Chinese personal names as they are really distributed: surnames by published frequency, given names by
birth cohort and sex (so strangers share names like 张伟 or 王秀英), plus pinyin and traditional spellings
for the variants clerks type.
"""

from __future__ import annotations

import bisect
import itertools
import random

from producers.synthetic.seeding import zipf_weights

# The ~100 commonest surnames with approximate per-mille shares of the population (national household
# registration statistics, rounded); together they cover about 85% of people, the rest is left out.
SURNAME_PER_MILLE: tuple[tuple[str, float], ...] = (
    ("王", 71.5), ("李", 71.2), ("张", 68.6), ("刘", 53.8), ("陈", 44.8), ("杨", 31.2), ("黄", 22.9),
    ("赵", 21.6), ("吴", 20.8), ("周", 20.1), ("徐", 16.6), ("孙", 15.4), ("马", 14.4), ("朱", 13.3),
    ("胡", 13.1), ("郭", 11.8), ("何", 11.5), ("林", 10.9), ("高", 10.8), ("罗", 9.6), ("郑", 8.9),
    ("梁", 8.5), ("谢", 7.4), ("宋", 7.3), ("唐", 7.1), ("许", 6.8), ("韩", 6.6), ("冯", 6.5), ("邓", 6.4),
    ("曹", 6.3), ("彭", 6.2), ("曾", 6.0), ("肖", 5.6), ("田", 5.3), ("董", 5.2), ("袁", 5.1), ("潘", 5.0),
    ("于", 5.0), ("蒋", 4.9), ("蔡", 4.8), ("余", 4.8), ("杜", 4.7), ("叶", 4.6), ("程", 4.6), ("苏", 4.3),
    ("魏", 4.3), ("吕", 4.2), ("丁", 4.1), ("任", 4.1), ("沈", 3.9), ("姚", 3.8), ("卢", 3.7), ("姜", 3.7),
    ("崔", 3.5), ("钟", 3.4), ("谭", 3.4), ("陆", 3.3), ("汪", 3.3), ("范", 3.2), ("金", 3.2), ("石", 3.1),
    ("廖", 3.1), ("贾", 3.0), ("夏", 3.0), ("韦", 2.9), ("付", 2.9), ("方", 2.8), ("白", 2.7), ("邹", 2.7),
    ("孟", 2.6), ("熊", 2.6), ("秦", 2.5), ("邱", 2.5), ("江", 2.5), ("尹", 2.4), ("薛", 2.4), ("闫", 2.3),
    ("段", 2.3), ("雷", 2.2), ("侯", 2.2), ("龙", 2.2), ("史", 2.1), ("陶", 2.0), ("黎", 2.0), ("贺", 2.0),
    ("顾", 1.9), ("毛", 1.9), ("郝", 1.9), ("龚", 1.8), ("邵", 1.8), ("万", 1.8), ("钱", 1.7), ("严", 1.7),
    ("覃", 1.7), ("武", 1.7), ("戴", 1.6), ("莫", 1.6), ("孔", 1.6), ("向", 1.5), ("汤", 1.5),
)

# Given names per cohort, commonest first (weights fall off as a Zipf law). Single-character names peak in
# the 1966-1995 cohorts, which is why 张伟 and 王芳 are the most shared full names.
GIVEN_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("old", "1"): ("建国", "建华", "国华", "国强", "建军", "德明", "志强", "永昌", "文华", "学文", "保国", "振华",
                   "玉山", "长生", "金山", "德胜", "福", "兴华", "贵", "有才", "正义", "家明", "全福", "春生",
                   "广才", "立新", "新民", "国庆", "明", "华"),
    ("old", "2"): ("秀英", "桂英", "秀兰", "玉兰", "桂兰", "凤英", "秀珍", "玉珍", "桂芳", "淑珍", "玉梅", "秀云",
                   "翠兰", "凤兰", "素芳", "春兰", "桂珍", "玉英", "兰英", "金兰", "秀荣", "秀芝", "素英", "玉华",
                   "秀梅", "英", "兰"),
    ("mid", "1"): ("伟", "磊", "勇", "军", "强", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "波", "华",
                   "建", "峰", "亮", "俊", "志强", "建华", "海涛", "小龙", "文杰", "红军", "永刚", "建军", "晓东",
                   "国庆", "浩", "飞"),
    ("mid", "2"): ("芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "丹", "萍", "红", "梅", "莉", "琴",
                   "雪", "慧", "颖", "婷", "晓燕", "丽娟", "红霞", "春梅", "海燕", "秀梅", "丽华", "秀英", "桂英"),
    ("young", "1"): ("浩", "宇", "鑫", "博", "帅", "浩然", "子轩", "宇轩", "浩宇", "俊杰", "一鸣", "梓豪", "宇航",
                     "子豪", "皓轩", "奕辰", "沐宸", "铭", "泽宇", "天佑", "子墨", "俊熙", "家豪", "晨", "杰"),
    ("young", "2"): ("欣怡", "梓涵", "一诺", "诗涵", "子涵", "雨桐", "佳怡", "梓萱", "可欣", "欣妍", "思涵", "婷",
                     "雪", "倩", "悦", "琳", "怡", "若曦", "语桐", "紫涵", "佳琪", "雨欣", "诗雨", "梦瑶"),
}

# Pinyin as hospitals type it for a name entered in Latin letters (ü as V, like most HIS input methods).
PINYIN: dict[str, str] = {
    "王": "WANG", "李": "LI", "张": "ZHANG", "刘": "LIU", "陈": "CHEN", "杨": "YANG", "黄": "HUANG", "赵": "ZHAO",
    "吴": "WU", "周": "ZHOU", "徐": "XU", "孙": "SUN", "马": "MA", "朱": "ZHU", "胡": "HU", "郭": "GUO", "何": "HE",
    "林": "LIN", "高": "GAO", "罗": "LUO", "郑": "ZHENG", "梁": "LIANG", "谢": "XIE", "宋": "SONG", "唐": "TANG",
    "许": "XU", "韩": "HAN", "冯": "FENG", "邓": "DENG", "曹": "CAO", "彭": "PENG", "曾": "ZENG", "肖": "XIAO",
    "田": "TIAN", "董": "DONG", "袁": "YUAN", "潘": "PAN", "于": "YU", "蒋": "JIANG", "蔡": "CAI", "余": "YU",
    "杜": "DU", "叶": "YE", "程": "CHENG", "苏": "SU", "魏": "WEI", "吕": "LV", "丁": "DING", "任": "REN",
    "沈": "SHEN", "姚": "YAO", "卢": "LU", "姜": "JIANG", "崔": "CUI", "钟": "ZHONG", "谭": "TAN", "陆": "LU",
    "汪": "WANG", "范": "FAN", "金": "JIN", "石": "SHI", "廖": "LIAO", "贾": "JIA", "夏": "XIA", "韦": "WEI",
    "付": "FU", "方": "FANG", "白": "BAI", "邹": "ZOU", "孟": "MENG", "熊": "XIONG", "秦": "QIN", "邱": "QIU",
    "江": "JIANG", "尹": "YIN", "薛": "XUE", "闫": "YAN", "段": "DUAN", "雷": "LEI", "侯": "HOU", "龙": "LONG",
    "史": "SHI", "陶": "TAO", "黎": "LI", "贺": "HE", "顾": "GU", "毛": "MAO", "郝": "HAO", "龚": "GONG",
    "邵": "SHAO", "万": "WAN", "钱": "QIAN", "严": "YAN", "覃": "QIN", "武": "WU", "戴": "DAI", "莫": "MO",
    "孔": "KONG", "向": "XIANG", "汤": "TANG",
    "建": "JIAN", "国": "GUO", "华": "HUA", "强": "QIANG", "军": "JUN", "德": "DE", "明": "MING", "志": "ZHI",
    "永": "YONG", "昌": "CHANG", "文": "WEN", "学": "XUE", "保": "BAO", "振": "ZHEN", "玉": "YU", "山": "SHAN",
    "长": "CHANG", "生": "SHENG", "胜": "SHENG", "福": "FU", "兴": "XING", "贵": "GUI", "有": "YOU", "才": "CAI",
    "正": "ZHENG", "义": "YI", "家": "JIA", "全": "QUAN", "春": "CHUN", "广": "GUANG", "立": "LI", "新": "XIN",
    "民": "MIN", "庆": "QING", "秀": "XIU", "英": "YING", "桂": "GUI", "兰": "LAN", "凤": "FENG", "珍": "ZHEN",
    "芳": "FANG", "淑": "SHU", "梅": "MEI", "云": "YUN", "翠": "CUI", "素": "SU", "荣": "RONG", "芝": "ZHI",
    "伟": "WEI", "磊": "LEI", "勇": "YONG", "杰": "JIE", "涛": "TAO", "斌": "BIN", "超": "CHAO", "刚": "GANG",
    "平": "PING", "辉": "HUI", "鹏": "PENG", "波": "BO", "峰": "FENG", "亮": "LIANG", "俊": "JUN", "海": "HAI",
    "小": "XIAO", "红": "HONG", "晓": "XIAO", "东": "DONG", "浩": "HAO", "飞": "FEI", "娜": "NA", "敏": "MIN",
    "静": "JING", "丽": "LI", "艳": "YAN", "娟": "JUAN", "霞": "XIA", "燕": "YAN", "玲": "LING", "丹": "DAN",
    "萍": "PING", "莉": "LI", "琴": "QIN", "雪": "XUE", "慧": "HUI", "颖": "YING", "婷": "TING", "宇": "YU",
    "鑫": "XIN", "博": "BO", "帅": "SHUAI", "然": "RAN", "子": "ZI", "轩": "XUAN", "一": "YI", "鸣": "MING",
    "梓": "ZI", "豪": "HAO", "航": "HANG", "皓": "HAO", "奕": "YI", "辰": "CHEN", "沐": "MU", "宸": "CHEN",
    "铭": "MING", "泽": "ZE", "天": "TIAN", "佑": "YOU", "墨": "MO", "熙": "XI", "晨": "CHEN", "欣": "XIN",
    "怡": "YI", "涵": "HAN", "诺": "NUO", "诗": "SHI", "雨": "YU", "桐": "TONG", "佳": "JIA", "萱": "XUAN",
    "可": "KE", "妍": "YAN", "思": "SI", "倩": "QIAN", "悦": "YUE", "琳": "LIN", "若": "RUO", "曦": "XI",
    "语": "YU", "紫": "ZI", "琪": "QI", "梦": "MENG", "瑶": "YAO",
}

# Simplified -> traditional, only for characters that differ (a Hong Kong/Taiwan-style entry, or an old ID card).
TRADITIONAL: dict[str, str] = {
    "张": "張", "刘": "劉", "陈": "陳", "杨": "楊", "黄": "黃", "赵": "趙", "吴": "吳", "孙": "孫", "马": "馬",
    "罗": "羅", "郑": "鄭", "谢": "謝", "许": "許", "韩": "韓", "冯": "馮", "邓": "鄧", "肖": "蕭", "蒋": "蔣",
    "叶": "葉", "苏": "蘇", "吕": "呂", "卢": "盧", "钟": "鍾", "谭": "譚", "陆": "陸", "贾": "賈", "韦": "韋",
    "邹": "鄒", "闫": "閆", "龙": "龍", "贺": "賀", "顾": "顧", "龚": "龔", "万": "萬", "钱": "錢", "严": "嚴",
    "汤": "湯", "伟": "偉", "华": "華", "国": "國", "军": "軍", "强": "強", "刚": "剛", "杰": "傑", "涛": "濤",
    "辉": "輝", "鹏": "鵬", "东": "東", "兰": "蘭", "凤": "鳳", "红": "紅", "艳": "艷", "丽": "麗", "颖": "穎",
    "云": "雲", "荣": "榮", "学": "學", "长": "長", "兴": "興", "贵": "貴", "义": "義", "广": "廣", "庆": "慶",
    "晓": "曉", "帅": "帥", "轩": "軒", "鸣": "鳴", "铭": "銘", "泽": "澤", "诺": "諾", "诗": "詩", "悦": "悅",
    "语": "語", "静": "靜", "梦": "夢", "宁": "寧",
}

_SURNAMES = tuple(s for s, _ in SURNAME_PER_MILLE)
_SURNAME_CUM = tuple(itertools.accumulate(w for _, w in SURNAME_PER_MILLE))
_GIVEN_CUM = {key: tuple(itertools.accumulate(zipf_weights(len(names), 0.9))) for key, names in GIVEN_NAMES.items()}
# Characters of each cohort's names, for the long tail of less common names composed of two of them.
_GIVEN_CHARS = {key: tuple(dict.fromkeys(c for n in names for c in n)) for key, names in GIVEN_NAMES.items()}
COMMON_NAME_SHARE = 0.55  # the rest of the people carry a rarer two-character name


def pick_surname(rng: random.Random) -> str:
    return _SURNAMES[bisect.bisect_right(_SURNAME_CUM, rng.random() * _SURNAME_CUM[-1])]


def cohort(birth_year: int) -> str:
    return "old" if birth_year <= 1965 else "mid" if birth_year <= 1995 else "young"


def pick_given_name(rng: random.Random, sex: str, birth_year: int) -> str:
    key = (cohort(birth_year), "2" if sex == "2" else "1")
    if rng.random() < COMMON_NAME_SHARE:
        cum = _GIVEN_CUM[key]
        return GIVEN_NAMES[key][bisect.bisect_right(cum, rng.random() * cum[-1])]
    chars = _GIVEN_CHARS[key]
    return rng.choice(chars) + rng.choice(chars)


def pinyin_name(surname: str, given: str) -> str | None:
    """``ZHANG WEI`` / ``WANG XIUYING``; None when a character has no entry (e.g. 之子 placeholders)."""
    try:
        return f"{PINYIN[surname]} {''.join(PINYIN[c] for c in given)}"
    except KeyError:
        return None


def traditional_name(name: str) -> str | None:
    """The name with traditional characters, or None when every character is the same in both scripts."""
    converted = "".join(TRADITIONAL.get(c, c) for c in name)
    return converted if converted != name else None
