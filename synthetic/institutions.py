"""The institutions of a synthetic world: Xinyang hospitals and county public-health platforms.

Hospitals are public institutions (事业单位, GB 32100 codes "12" + region); county platforms belong to the
county health commission (机关, "11" + region). Which ones exist depends only on the requested counts, so a
world with 5 hospitals always holds the same five.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foundation.standards.credit_code import make_credit_code
from synthetic.regions import COUNTIES

# Approximate resident population (millions, 2020 census scale) per county: weights for where people live,
# how busy a county's institutions are, and how many births and deaths its platform registers.
COUNTY_POPULATION_M: dict[str, float] = {
    "411502": 0.66,
    "411503": 0.79,
    "411521": 0.51,
    "411522": 0.62,
    "411523": 0.28,
    "411524": 0.53,
    "411525": 1.03,
    "411526": 0.65,
    "411527": 0.56,
    "411528": 0.81,
}
# Order in which counties get a hospital or a county platform in a world: biggest first, so small worlds
# are still busy, and county platforms cover counties that also have hospitals.
COUNTY_ORDER: tuple[str, ...] = (
    "411525",
    "411526",
    "411528",
    "411522",
    "411503",
    "411521",
    "411527",
    "411524",
    "411523",
    "411502",
)
CITY_DISTRICTS: tuple[str, ...] = ("411502", "411503")

HospitalType = Literal["city_general", "county_general", "tcm", "mch"]


@dataclass(frozen=True, slots=True)
class Institution:
    kind: Literal["hospital", "county"]
    index: int
    org_code: str
    name: str
    region_code: str
    hospital_type: HospitalType | None = None
    daily_visits: int = 0  # mean weekday outpatient + emergency volume

    @property
    def schema(self) -> str:
        return f"h_{self.org_code.lower()}" if self.kind == "hospital" else f"c_{self.region_code}"

    @property
    def is_city_level(self) -> bool:
        return self.hospital_type == "city_general"


_VOLUME: dict[HospitalType, int] = {"city_general": 340, "county_general": 290, "tcm": 150, "mch": 110}


def _hospital_plan() -> list[tuple[str, str, HospitalType]]:
    """(name, region, type) in the order hospitals are added to a world."""
    plan: list[tuple[str, str, HospitalType]] = [("信阳市中心医院", "411502", "city_general")]
    plan += [(f"{COUNTIES[c]}人民医院", c, "county_general") for c in COUNTY_ORDER if c not in CITY_DISTRICTS]
    plan += [("平桥区人民医院", "411503", "county_general"), ("信阳市中医院", "411502", "tcm")]
    plan += [(f"{COUNTIES[c]}中医院", c, "tcm") for c in COUNTY_ORDER if c not in CITY_DISTRICTS]
    plan += [("信阳市妇幼保健院", "411502", "mch")]
    plan += [(f"{COUNTIES[c]}妇幼保健院", c, "mch") for c in COUNTY_ORDER if c not in CITY_DISTRICTS]
    return plan


def build_institutions(hospitals: int, counties: int) -> list[Institution]:
    """``hospitals`` hospitals then ``counties`` county platforms (at most 10: Xinyang has ten counties)."""
    if counties > len(COUNTY_ORDER):
        raise ValueError(f"Xinyang has {len(COUNTY_ORDER)} county-level districts, asked for {counties}")
    plan = _hospital_plan()
    result: list[Institution] = []
    for i in range(hospitals):
        if i < len(plan):
            name, region, kind = plan[i]
        else:  # beyond the named hospitals: further general hospitals, spread over the counties
            region = COUNTY_ORDER[i % len(COUNTY_ORDER)]
            name, kind = f"{COUNTIES[region]}第{i // len(COUNTY_ORDER) + 1}人民医院", "county_general"
        volume = round(_VOLUME[kind] * (0.7 + 0.6 * COUNTY_POPULATION_M[region]))
        code = make_credit_code("12", region, f"MB{4100 + i:04d}{(i * 37) % 97:02d}")
        result.append(Institution("hospital", i, code, name, region, kind, volume))
    for j, region in enumerate(COUNTY_ORDER[:counties]):
        code = make_credit_code("11", region, f"MB{1500 + j:04d}{(j * 53) % 89:02d}")
        result.append(Institution("county", j, code, f"{COUNTIES[region]}卫生健康委员会", region))
    return result
