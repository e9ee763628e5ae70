"""The shared resident population of a synthetic world: households living in Xinyang counties.

People are generated household by household (young families, middle-aged couples, elderly couples,
left-behind grandparents with grandchildren, singles), which yields a realistic age pyramid and the things
identity resolution must cope with: family members sharing a phone and an address, twins with the same
birth date, surname and address, and many unrelated people with the same common name.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from dataclasses import dataclass, field

from foundation.standards.china_time import CST
from foundation.standards.citizen_id import make_citizen_id
from synthetic.institutions import CITY_DISTRICTS, COUNTY_POPULATION_M
from synthetic.names import pick_given_name, pick_surname
from synthetic.regions import COUNTIES

# Townships (乡镇/街道) per county; the first ones are the urban sub-districts of the county seat.
TOWNSHIPS: dict[str, tuple[str, ...]] = {
    "411502": (
        "老城街道",
        "民权街道",
        "车站街道",
        "湖东街道",
        "金牛山街道",
        "东双河镇",
        "董家河镇",
        "浉河港镇",
        "谭家河乡",
        "柳林乡",
        "吴家店镇",
    ),
    "411503": (
        "平桥街道",
        "羊山街道",
        "前进街道",
        "南京路街道",
        "明港镇",
        "五里店街道",
        "邢集镇",
        "查山乡",
        "甘岸街道",
        "长台关乡",
        "肖王乡",
        "胡店乡",
        "龙井乡",
    ),
    "411521": (
        "龙山街道",
        "丽水街道",
        "宝城街道",
        "周党镇",
        "竹竿镇",
        "灵山镇",
        "子路镇",
        "楠杆镇",
        "青山镇",
        "潘新镇",
        "彭新镇",
        "莽张镇",
        "东铺乡",
        "高店乡",
    ),
    "411522": (
        "紫水街道",
        "弦山街道",
        "十里镇",
        "寨河镇",
        "孙铁铺镇",
        "马畈镇",
        "泼陂河镇",
        "白雀园镇",
        "砖桥镇",
        "仙居乡",
        "北向店乡",
        "槐店乡",
    ),
    "411523": (
        "新集镇",
        "沙窝镇",
        "吴陈河镇",
        "苏河镇",
        "八里畈镇",
        "周河乡",
        "陡山河乡",
        "浒湾乡",
        "千斤乡",
        "卡房乡",
    ),
    "411524": (
        "赤城街道",
        "鄢岗镇",
        "双椿铺镇",
        "汪桥镇",
        "余集镇",
        "达权店镇",
        "丰集镇",
        "汪岗镇",
        "上石桥镇",
        "伏山乡",
        "河凤桥乡",
        "苏仙石乡",
    ),
    "411525": (
        "番城街道",
        "秀水街道",
        "蓼城街道",
        "陈淋子镇",
        "黎集镇",
        "蒋集镇",
        "往流镇",
        "郭陆滩镇",
        "胡族铺镇",
        "方集镇",
        "三河尖镇",
        "段集镇",
        "汪棚镇",
        "张广庙镇",
    ),
    "411526": (
        "春申街道",
        "弋阳街道",
        "老城街道",
        "北城街道",
        "双柳树镇",
        "伞陂镇",
        "卜塔集镇",
        "仁和镇",
        "付店镇",
        "踅孜镇",
        "桃林铺镇",
        "黄寺岗镇",
    ),
    "411527": (
        "顺河街道",
        "栏杆街道",
        "桂花街道",
        "马集镇",
        "防胡镇",
        "新里镇",
        "期思镇",
        "赵集镇",
        "台头乡",
        "王家岗乡",
        "固城乡",
        "三空桥乡",
    ),
    "411528": (
        "谯楼街道",
        "龙湖街道",
        "淮河街道",
        "包信镇",
        "夏庄镇",
        "东岳镇",
        "项店镇",
        "小茴店镇",
        "曹黄林镇",
        "彭店乡",
        "杨店乡",
        "张陶乡",
        "白土店乡",
        "岗李店乡",
    ),
}
VILLAGE_SUFFIXES = "庄湾岗洼楼营集店畈冲塘寨桥铺圩郢"  # 郢 and 畈 are typical of southern Henan place names
ROADS = (
    "人民路",
    "解放路",
    "胜利路",
    "中山路",
    "新华路",
    "民主路",
    "建设路",
    "文化路",
    "工业路",
    "东方红大道",
    "迎宾大道",
    "北京路",
    "南湖路",
    "五一路",
    "和平路",
    "光明路",
)
# Birth registration areas of people who were not born where they live now (GB/T 2260 codes).
OTHER_HENAN_AREAS = ("410102", "410105", "410302", "411302", "411702", "411602", "410602", "411102")
NEIGHBOUR_PROVINCE_AREAS = ("421102", "421181", "341502", "341522", "420102", "340104")
# Mobile number prefixes in use in Henan (China Mobile, Unicom, Telecom).
MOBILE_PREFIXES = (
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "182",
    "183",
    "187",
    "188",
    "130",
    "131",
    "132",
    "155",
    "156",
    "185",
    "186",
    "133",
    "153",
    "180",
    "181",
    "189",
    "173",
    "177",
    "191",
    "199",
    "166",
    "198",
    "176",
)


@dataclass(slots=True)
class Person:
    """One resident as the world knows them (the truth every institution records its own way)."""

    pid: int
    surname: str
    given: str
    sex: str  # GB/T 2261.1: 1 male, 2 female
    birth_date: dt.date
    id_number: str | None  # the true valid 18-character number; None for newborns not yet registered
    region_code: str  # county of residence
    township: str
    address: str  # full current address, in Chinese
    phone: str | None
    household: int
    occupation: str
    ethnicity: str  # GB/T 3304: 01 汉族, 03 回族 …
    marital_status: str  # GB/T 2261.2: 10 未婚 20 已婚 30 丧偶 40 离婚
    abo: str  # CV04.50.005
    rh: str  # CV04.50.020
    health_card: str | None
    insurance_card: str | None
    display_name: str | None = None  # e.g. 王芳之子 for a newborn not yet named
    conditions: list[str] = field(default_factory=list)  # chronic/clinical condition keys (clinical.py)
    managed: bool = False  # under county chronic-disease management (hypertension/diabetes follow-up)
    died_at: dt.datetime | None = None
    death_planned: bool = False  # reserved for a death in the window: never admitted elsewhere meanwhile
    twin_of: int | None = None
    mother: int | None = None
    stays: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.display_name or self.surname + self.given

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))

    def age_group(self, day: dt.date) -> int:
        """docs/domain.md §5 population groups: 0 child 0-6, 1 student 7-18, 2 adult 19-59, 3 elderly ≥60."""
        age = self.age_on(day)
        return 0 if age <= 6 else 1 if age <= 18 else 2 if age <= 59 else 3

    def alive_at(self, moment: dt.datetime) -> bool:
        return self.died_at is None or moment < self.died_at

    def in_hospital_at(self, moment: dt.datetime) -> bool:
        return any(a <= moment < b for a, b in self.stays)


@dataclass(slots=True)
class Population:
    people: list[Person]
    by_county: dict[str, list[int]]  # region code -> pids, in pid order
    by_household: dict[int, list[int]] = field(default_factory=dict)
    _next_household: int = 0
    _used_ids: set[str] = field(default_factory=set)  # membership only, never iterated

    def add(self, person: Person) -> None:
        self.people.append(person)
        self.by_county.setdefault(person.region_code, []).append(person.pid)
        self.by_household.setdefault(person.household, []).append(person.pid)


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _occupation(rng: random.Random, age: int, urban: bool) -> str:
    """Occupation in the infectious-disease report classification (传染病报告卡职业分类)."""
    if age <= 2:
        return "散居儿童"
    if age <= 6:
        return rng.choices(("幼托儿童", "散居儿童"), (0.7, 0.3))[0]
    if age <= 18:
        return "学生"
    if age <= 22 and rng.random() < 0.45:
        return "学生"
    if age >= 60:
        return rng.choices(("农民", "离退人员", "家务及待业"), (0.25, 0.6, 0.15) if urban else (0.8, 0.08, 0.12))[0]
    options = ("农民", "民工", "工人", "商业服务", "干部职员", "教师", "医务人员", "餐饮食品业", "家务及待业", "其他")
    weights = (8, 10, 14, 16, 12, 4, 2, 5, 8, 6) if urban else (50, 18, 7, 6, 3, 2, 1, 3, 7, 3)
    return rng.choices(options, weights)[0]


class PopulationBuilder:
    """Builds households; also adds newborns later (births in the window)."""

    def __init__(self, rng: random.Random, reference_day: dt.date, county_weights: dict[str, float]) -> None:
        self.rng = rng
        self.today = reference_day
        self.population = Population([], {})
        self._counties = tuple(c for c in COUNTIES if county_weights.get(c, 0) > 0)
        self._county_cum = tuple(itertools.accumulate(county_weights[c] for c in self._counties))
        self._villages: dict[tuple[str, str], tuple[str, ...]] = {}
        self._phone_owners: set[int] = set()

    # --- places -------------------------------------------------------------------------------------------
    def _pick_county(self) -> str:
        return self._counties[bisect.bisect_right(self._county_cum, self.rng.random() * self._county_cum[-1])]

    def _address(self, county: str) -> tuple[str, str]:
        rng = self.rng
        townships = TOWNSHIPS[county]
        urban_count = sum(1 for t in townships if t.endswith("街道"))
        urban_share = 0.7 if county in CITY_DISTRICTS else 0.3
        if urban_count and rng.random() < urban_share:
            township = townships[rng.randrange(urban_count)]
            street = f"{rng.choice(ROADS)}{rng.randrange(1, 300)}号"
            if rng.random() < 0.7:
                street += (
                    f"{rng.randrange(1, 30)}号楼{rng.randrange(1, 5)}单元{rng.randrange(1, 19)}0{rng.randrange(1, 5)}室"
                )
            return township, f"河南省信阳市{COUNTIES[county]}{township}{street}"
        township = (
            townships[rng.randrange(urban_count, len(townships))] if urban_count < len(townships) else townships[0]
        )
        key = (county, township)
        if key not in self._villages:  # a township's villages are fixed once drawn, so neighbours share them
            self._villages[key] = tuple(f"{pick_surname(rng)}{rng.choice(VILLAGE_SUFFIXES)}村" for _ in range(8))
        village = rng.choice(self._villages[key])
        return (
            township,
            f"河南省信阳市{COUNTIES[county]}{township}{village}{rng.randrange(1, 13)}组{rng.randrange(1, 80)}号",
        )

    def _birth_area(self, county: str, birth_year: int) -> str:
        r = self.rng.random()
        if r < 0.85 or birth_year >= 2015:
            return county
        if r < 0.92:
            return self.rng.choice(tuple(COUNTIES))
        if r < 0.97:
            return self.rng.choice(OTHER_HENAN_AREAS)
        return self.rng.choice(NEIGHBOUR_PROVINCE_AREAS)

    def _id_number(self, area: str, birth: dt.date, sex: str, near: int | None = None) -> str:
        rng = self.rng
        for _ in range(50):
            # The 3-digit sequence: odd for men, even for women; twins get neighbouring numbers.
            base = near + 2 if near is not None else rng.randrange(0, 500) * 2
            sequence = (base // 2 * 2 + (1 if sex == "1" else 0)) % 1000
            number = make_citizen_id(area, birth, sequence)
            if number not in self.population._used_ids:
                self.population._used_ids.add(number)
                return number
            near = None
        raise RuntimeError("ran out of ID sequence numbers")

    # --- people -------------------------------------------------------------------------------------------
    def _birth_date(self, age: int) -> dt.date:
        # Uniform over the year of age; never after the reference day.
        latest = self.today - dt.timedelta(days=365 * age)
        return latest - dt.timedelta(days=self.rng.randrange(0, 365))

    def person(
        self,
        *,
        age: int,
        sex: str,
        surname: str,
        county: str,
        township: str,
        address: str,
        household: int,
        phone: str | None,
        birth: dt.date | None = None,
        marital: str | None = None,
        twin_of: Person | None = None,
    ) -> Person:
        rng = self.rng
        birth = birth or self._birth_date(age)
        given = pick_given_name(rng, sex, birth.year)
        while twin_of is not None and given == twin_of.given:  # parents don't give twins the same name
            given = pick_given_name(rng, sex, birth.year)
        area = self._birth_area(county, birth.year)
        near = None
        if twin_of is not None and twin_of.id_number:
            area, near = twin_of.id_number[:6], int(twin_of.id_number[14:17])
        id_number = self._id_number(area, birth, sex, near)
        urban = "街道" in township
        if marital is None:
            marital = (
                "10" if age < 22 else rng.choices(("20", "10", "30", "40"), (88, 4, 4 + max(0, age - 55) // 2, 3))[0]
            )
        person = Person(
            pid=len(self.population.people),
            surname=surname,
            given=given,
            sex=sex,
            birth_date=birth,
            id_number=id_number,
            region_code=county,
            township=township,
            address=address,
            phone=self._phone(household, age, phone),
            household=household,
            occupation=_occupation(rng, age, urban),
            ethnicity="03"
            if rng.random() < 0.012
            else ("01" if rng.random() < 0.996 else rng.choice(("02", "04", "05"))),
            marital_status=marital,
            abo=rng.choices("1234", (28, 31, 31, 10))[0],
            rh="1" if rng.random() < 0.004 else "2",
            health_card=f"{rng.getrandbits(128):032X}" if rng.random() < 0.45 else None,
            insurance_card=f"4115{rng.randrange(10**15):015d}" if rng.random() < 0.7 else None,
            twin_of=twin_of.pid if twin_of else None,
        )
        self.population.add(person)
        return person

    def _phone(self, household: int, age: int, household_phone: str | None) -> str | None:
        """Children and the old give the household's number (the first adult's); other adults mostly their own."""
        if household_phone is None or age < 16 or age > 72:
            return household_phone
        if household not in self._phone_owners:  # membership only
            self._phone_owners.add(household)
            return household_phone
        return household_phone if self.rng.random() < 0.15 else _mobile(self.rng)

    def household(self) -> None:
        rng = self.rng
        hh = self.population._next_household
        self.population._next_household += 1
        county = self._pick_county()
        township, address = self._address(county)
        phone = _mobile(rng) if rng.random() < 0.97 else f"0376-{rng.randrange(2000000, 8000000)}"
        surname = pick_surname(rng)
        kind = rng.choices(("young_family", "middle", "elderly", "single", "left_behind"), (34, 20, 20, 10, 16))[0]

        def add(age: int, sex: str, surname_: str = surname, **kw: object) -> Person:
            return self.person(
                age=max(0, age),
                sex=sex,
                surname=surname_,
                county=county,
                township=township,
                address=address,
                household=hh,
                phone=phone,
                **kw,  # type: ignore[arg-type]  # the keyword set each caller passes is fixed
            )

        def children(mother_age: int, count: int) -> None:
            age = mother_age - rng.randint(22, 32)
            first: Person | None = None
            for i in range(count):
                if age < 0:
                    return
                sex = rng.choice("12")
                if first is not None and i == 1 and rng.random() < 0.03:  # twins
                    add(first.age_on(self.today), sex, birth=first.birth_date, twin_of=first)
                    return
                child = add(age, sex, surname if rng.random() < 0.95 else pick_surname(rng))
                first = first or child
                age -= rng.randint(2, 7)

        if kind == "young_family":
            father = rng.randint(25, 48)
            mother = max(20, father + round(rng.gauss(-2, 2)))
            add(father, "1", marital="20")
            add(mother, "2", pick_surname(rng), marital="20")
            children(mother, rng.choices((1, 2, 3), (45, 45, 10))[0])
            if rng.random() < 0.3:
                add(father + rng.randint(24, 32), "1", marital="20")
                if rng.random() < 0.75:
                    add(father + rng.randint(22, 30), "2", pick_surname(rng), marital="20")
        elif kind == "middle":
            husband = rng.randint(45, 64)
            add(husband, "1", marital="20")
            add(husband + round(rng.gauss(-2, 2)), "2", pick_surname(rng), marital="20")
            if rng.random() < 0.4:
                add(rng.randint(18, 30), rng.choice("12"))
        elif kind == "elderly":
            age = min(98, 60 + int(rng.expovariate(1 / 11)))
            if rng.random() < 0.65:
                add(age, "1", marital="20")
                add(age + round(rng.gauss(-2, 2)), "2", pick_surname(rng), marital="20")
            else:
                add(age + 2, "2" if rng.random() < 0.68 else "1", marital="30")
        elif kind == "single":
            add(rng.randint(20, 40) if rng.random() < 0.7 else rng.randint(40, 60), rng.choice("12"))
        else:  # left-behind: grandparents raise the children while the parents work elsewhere (留守)
            grandfather = rng.randint(55, 78)
            add(grandfather, "1", marital="20")
            if rng.random() < 0.8:
                add(grandfather + round(rng.gauss(-2, 2)), "2", pick_surname(rng), marital="20")
            for _ in range(rng.choices((1, 2), (55, 45))[0]):
                add(rng.randint(0, 14), rng.choice("12"))

    def newborn(self, mother: Person, born_at: dt.datetime, sex: str, twin_of: Person | None = None) -> Person:
        """A child born in the window: in the mother's household, no ID number yet, often not yet named."""
        rng = self.rng
        birth = born_at.astimezone(CST).date()
        # The father's surname: the household's man of about the mother's age, else a fresh one.
        fathers = [
            p
            for p in (self.population.people[i] for i in self.population.by_household[mother.household])
            if p.sex == "1" and abs(p.birth_date.year - mother.birth_date.year) <= 8
        ]
        surname = mother.surname if rng.random() < 0.08 else fathers[0].surname if fathers else pick_surname(rng)
        if twin_of is not None:
            surname = twin_of.surname
        person = Person(
            pid=len(self.population.people),
            surname=surname,
            given=pick_given_name(rng, sex, birth.year),
            sex=sex,
            birth_date=birth,
            id_number=None,
            region_code=mother.region_code,
            township=mother.township,
            address=mother.address,
            phone=mother.phone,
            household=mother.household,
            occupation="散居儿童",
            ethnicity=mother.ethnicity,
            marital_status="10",
            abo="5",
            rh="3",
            health_card=None,
            insurance_card=None,
            twin_of=twin_of.pid if twin_of else None,
            mother=mother.pid,
        )
        if rng.random() < 0.35:  # registered before the parents chose a name
            person.display_name = f"{mother.name}之{'子' if sex == '1' else '女'}"
        self.population.add(person)
        return person


def county_weights(institution_regions: list[str]) -> dict[str, float]:
    """Where the synthetic residents live: proportional to population, heavier where institutions are."""
    weights = {}
    for code, millions in COUNTY_POPULATION_M.items():
        weights[code] = millions * (1 + 3 * institution_regions.count(code))
    return weights


def build_population(
    rng: random.Random, size: int, reference_day: dt.date, institution_regions: list[str]
) -> PopulationBuilder:
    """Households until ``size`` people live in the world; returns the builder (it adds newborns later)."""
    builder = PopulationBuilder(rng, reference_day, county_weights(institution_regions))
    while len(builder.population.people) < size:
        builder.household()
    return builder
