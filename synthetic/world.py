"""A synthetic world before it is written anywhere: institutions, residents with their conditions, and the
events planned across institutions (births, deaths outside hospital, epidemic wave cases).

Everything that must be consistent between databases is decided here, once: a birth is in the delivering
hospital and in the county birth register; a person who dies has no ordinary clinical event afterwards.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, field

from synthetic.clinical import CaseMix, assign_conditions
from synthetic.institutions import COUNTY_POPULATION_M, Institution, build_institutions
from synthetic.population import Person, PopulationBuilder, build_population
from synthetic.public_health import birth_measurements, death_weight, home_death_chain
from synthetic.seeding import derive_rng, poisson
from synthetic.timeline import Window
from synthetic.waves import Wave, default_waves

BIRTHS_PER_MILLION_DAY = 2.2  # registered births per day per million residents (scaled to the sample)
HOME_DEATHS_PER_MILLION_DAY = 1.5


@dataclass(slots=True)
class Birth:
    mother: Person
    child: Person
    born_at: dt.datetime
    weeks: int
    weight_g: int
    length_cm: float
    caesarean: bool
    hospital: int | None  # index into World.hospitals, None = delivered outside the world's hospitals
    certificate_no: str
    vaccines: list[tuple[str, dt.datetime]]  # at-birth doses: HepB, and BCG unless preterm/low weight


@dataclass(slots=True)
class Death:
    person: Person
    died_at: dt.datetime
    place: str  # 1 医疗卫生机构 2 来院途中 3 家中 4 养老服务机构 9 其他
    chain: str  # key into public_health.DEATH_CHAINS
    certificate_no: str
    hospital: int | None = None  # the hospital that certified a death in hospital


@dataclass(slots=True)
class WaveCase:
    wave: Wave
    presentation: str
    person: Person
    day: int
    second: int
    hospital: int


@dataclass(slots=True)
class World:
    seed: int
    window: Window
    hospitals: list[Institution]
    counties: list[Institution]
    builder: PopulationBuilder
    casemix: CaseMix
    waves: tuple[Wave, ...] = ()
    births: list[Birth] = field(default_factory=list)
    home_deaths: list[Death] = field(default_factory=list)
    hospital_deaths: list[Death] = field(default_factory=list)  # filled while hospitals are built
    wave_cases: list[WaveCase] = field(default_factory=list)

    @property
    def people(self) -> list[Person]:
        return self.builder.population.people

    def residents(self, region: str) -> list[Person]:
        return [self.people[pid] for pid in self.builder.population.by_county.get(region, [])]

    def local_hospitals(self, region: str) -> list[int]:
        return [h.index for h in self.hospitals if h.region_code == region and not h.is_city_level]


def population_size(hospitals: int, counties: int, days: int) -> int:
    """About 150 residents per hospital-day plus 400 per county platform (5 × 7 days, 2 counties: ~6000)."""
    return max(600, 150 * hospitals * days + 400 * counties)


def _weighted_pick(rng_random: float, cum: list[float]) -> int:
    return bisect.bisect_right(cum, rng_random * cum[-1])


def _plan_births(world: World) -> None:
    rng = derive_rng(world.seed, "births")
    window = world.window
    regions = list(dict.fromkeys([c.region_code for c in world.counties] + [h.region_code for h in world.hospitals]))
    serial = itertools.count(1)
    for region in regions:
        women = [p for p in world.residents(region) if p.sex == "2" and 20 <= p.age_on(window.start) <= 42]
        pregnant = [p for p in women if "PREG" in p.conditions]
        others = [p for p in women if "PREG" not in p.conditions]
        rng.shuffle(others)
        for day in range(window.days):
            for _ in range(poisson(rng, COUNTY_POPULATION_M[region] * BIRTHS_PER_MILLION_DAY)):
                pool = pregnant if pregnant else others
                if not pool:
                    break
                mother = pool.pop(rng.randrange(len(pool)))
                if "PREG" in mother.conditions:
                    mother.conditions.remove("PREG")
                born_at = window.at(day, window.any_second(rng, day))
                weeks, weight, length = birth_measurements(rng)
                twins = rng.random() < 0.01
                local = world.local_hospitals(region)
                city = [h.index for h in world.hospitals if h.is_city_level]
                if local and rng.random() < 0.8:
                    hospital: int | None = rng.choice(local)
                elif city and rng.random() < 0.5:
                    hospital = city[0]
                else:
                    hospital = None  # a township health centre outside this world
                caesarean = rng.random() < 0.38
                first: Person | None = None
                for _child in range(2 if twins else 1):
                    child = world.builder.newborn(mother, born_at, "1" if rng.random() < 0.53 else "2", twin_of=first)
                    first = first or child
                    vaccines = [("HepB", born_at + dt.timedelta(minutes=rng.randint(60, 720)))]
                    if weeks >= 37 and weight >= 2500:
                        vaccines.append(("BCG", born_at + dt.timedelta(minutes=rng.randint(360, 1440))))
                    certificate = f"{'PQRS'[int(region) % 4]}41{next(serial) + 150000 * (int(region) % 100):07d}"
                    world.births.append(
                        Birth(
                            mother,
                            child,
                            born_at,
                            weeks,
                            weight - (300 if twins else 0),
                            length,
                            caesarean,
                            hospital,
                            certificate,
                            vaccines,
                        )
                    )


def _plan_home_deaths(world: World) -> None:
    """Deaths outside hospital, registered by the county platforms (the persons are kept out of wards)."""
    rng = derive_rng(world.seed, "home-deaths")
    window = world.window
    mothers = {b.mother.pid for b in world.births}  # membership only: they give birth in the window
    for county in world.counties:
        candidates = [p for p in world.residents(county.region_code) if p.age_on(window.start) >= 18]
        weights = list(itertools.accumulate(death_weight(p, window.start) for p in candidates))
        serial = itertools.count(1)
        for day in range(window.days):
            for _ in range(poisson(rng, COUNTY_POPULATION_M[county.region_code] * HOME_DEATHS_PER_MILLION_DAY)):
                for _try in range(20):
                    person = candidates[_weighted_pick(rng.random(), weights)]
                    if not person.death_planned and person.pid not in mothers:
                        break
                else:
                    continue
                person.death_planned = True
                person.died_at = window.at(day, window.any_second(rng, day))
                place = rng.choices("3429", (80, 5, 10, 5))[0]
                certificate = f"{county.region_code}{window.start.year}9{next(serial):04d}"
                chain = home_death_chain(person, rng, window.date(day))
                world.home_deaths.append(Death(person, person.died_at, place, chain, certificate))


def _most_populous_rural_township(world: World, region: str) -> str:
    counts = Counter(p.township for p in world.residents(region) if not p.township.endswith("街道"))
    if not counts:
        counts = Counter(p.township for p in world.residents(region))
    return max(sorted(counts), key=lambda t: counts[t])  # sorted first: ties resolve the same way every run


def _plan_waves(world: World, waves: tuple[Wave, ...] | None) -> None:
    window = world.window
    general = [h for h in world.hospitals if h.hospital_type == "county_general"] or world.hospitals
    hfmd_county = general[0].region_code
    cluster_county = general[1].region_code if len(general) > 1 else hfmd_county
    if waves is None:
        waves = default_waves(
            window.days,
            sum(h.daily_visits for h in world.hospitals),
            hfmd_county,
            cluster_county,
            _most_populous_rural_township(world, cluster_county),
        )
    world.waves = waves
    city = [h.index for h in world.hospitals if h.is_city_level]
    for wave in waves:
        rng = derive_rng(world.seed, "wave", wave.name)
        pool = [
            p
            for p in world.people
            if (not wave.region_codes or p.region_code in wave.region_codes)
            and (wave.township is None or p.township == wave.township)
            and wave.min_age <= p.age_on(window.start) <= wave.max_age
            and p.id_number is not None
        ]
        if not pool:
            continue
        cum = list(itertools.accumulate(wave.age_weights[p.age_group(window.start)] for p in pool))
        taken: set[int] = set()  # membership only
        keys = [k for k, _ in wave.presentations]
        weights = [w for _, w in wave.presentations]
        for day in range(window.days):
            for _ in range(poisson(rng, wave.expected(day))):
                for _try in range(30):
                    person = pool[_weighted_pick(rng.random(), cum)]
                    if person.pid not in taken:
                        break
                else:
                    continue
                taken.add(person.pid)
                second = window.clinic_second(rng) if rng.random() < 0.8 else window.any_second(rng, day)
                local = world.local_hospitals(person.region_code)
                if local and rng.random() < 0.75:
                    hospital = rng.choice(local)
                elif city:
                    hospital = city[0]
                else:
                    hospital = rng.randrange(len(world.hospitals))
                world.wave_cases.append(WaveCase(wave, rng.choices(keys, weights)[0], person, day, second, hospital))


def build_world(
    seed: int, hospitals: int, counties: int, days: int, start: dt.date, waves: tuple[Wave, ...] | None = None
) -> World:
    if hospitals < 1 or days < 1:
        raise ValueError("a world needs at least one hospital and one day")
    window = Window(start, days)
    institutions = build_institutions(hospitals, counties)
    hospital_list = [i for i in institutions if i.kind == "hospital"]
    county_list = [i for i in institutions if i.kind == "county"]
    builder = build_population(
        derive_rng(seed, "population"),
        population_size(hospitals, counties, days),
        start,
        [i.region_code for i in institutions],
    )
    rng = derive_rng(seed, "conditions")
    for person in builder.population.people:
        assign_conditions(person, rng, start)
    world = World(seed, window, hospital_list, county_list, builder, CaseMix())
    _plan_births(world)
    _plan_home_deaths(world)
    _plan_waves(world, waves)
    return world
