"""Epidemic waves laid over the background case mix, as explicit parameters so that syndromic
surveillance and early-warning stages can be tested against a known truth.

A wave adds cases of one presentation among the residents of some counties (optionally one township: a
point-source cluster) with a triangular epidemic curve: zero before ``first_day``, rising to ``peak_cases``
expected cases on ``peak_day``, falling to the last case day ``last_day`` (days are window offsets).
"""

from __future__ import annotations

from dataclasses import dataclass

Weights4 = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Wave:
    name: str
    presentations: tuple[tuple[str, float], ...]  # (clinical presentation key, weight): how cases get diagnosed
    first_day: int
    peak_day: int
    last_day: int
    peak_cases: float  # expected extra cases on the peak day, whole affected area
    region_codes: tuple[str, ...] = ()  # counties whose residents fall ill; empty = every county
    township: str | None = None  # a point-source cluster: only residents of this township
    min_age: int = 0
    max_age: int = 120
    age_weights: Weights4 = (1.0, 1.0, 1.0, 1.0)  # attack rate by group (child, student, adult, elderly)
    exposure: str | None = None  # epidemiological history written on the cases' visits
    lab_profile: str | None = None  # overrides the presentation's lab profile (e.g. norovirus)
    lab_panel: str | None = None  # an extra test ordered for the cases (e.g. "noro")

    def expected(self, day: int) -> float:
        if day < self.first_day or day > self.last_day:
            return 0.0
        if day <= self.peak_day:
            span = self.peak_day - self.first_day + 1
            return self.peak_cases * (day - self.first_day + 1) / span
        span = self.last_day - self.peak_day + 1
        return self.peak_cases * (self.last_day - day + 1) / span


def default_waves(
    days: int, total_daily_visits: int, hfmd_county: str, cluster_county: str, cluster_township: str
) -> tuple[Wave, ...]:
    """The three waves of the default scenario, scaled to the window and to the hospitals' volume.

    * influenza: every county, rising from day 0 to a peak at 60% of the window, schoolchildren first;
      about 6% extra visits at the peak, diagnosed as influenza or (often) as upper respiratory infection;
    * hand-foot-mouth disease: children 1-5 in ``hfmd_county``, from a quarter of the window on;
    * diarrhoea cluster: a banquet in one township of ``cluster_county``, 3 days in mid-window, norovirus.
    """
    last = days - 1
    flu_peak = min(last, round(days * 0.6))
    cluster_first = max(0, days // 2 - 1)
    return (
        Wave(
            "influenza",
            (("influenza", 0.55), ("uri", 0.45)),
            0,
            flu_peak,
            last,
            peak_cases=round(total_daily_visits * 0.06, 1),
            age_weights=(2.0, 3.0, 1.0, 1.3),
            exposure="周围有类似发热患者",
            lab_panel="flu",
            lab_profile="influenza",
        ),
        Wave(
            "hfmd",
            (("hfmd", 0.85), ("herpangina", 0.15)),
            min(last, days // 4),
            min(last, days // 2 + 1),
            last,
            peak_cases=12.0,
            region_codes=(hfmd_county,),
            min_age=1,
            max_age=5,
            exposure="幼儿园同班有类似病例",
        ),
        Wave(
            "diarrhoea_cluster",
            (("infectious_diarrhoea", 0.7), ("gastroenteritis", 0.3)),
            cluster_first,
            min(last, cluster_first + 1),
            min(last, cluster_first + 2),
            peak_cases=18.0,
            region_codes=(cluster_county,),
            township=cluster_township,
            min_age=3,
            age_weights=(0.5, 1.0, 1.0, 1.0),
            exposure=f"发病前1天曾在{cluster_township}参加同村宴席",
            lab_profile="norovirus",
            lab_panel="noro",
        ),
    )
