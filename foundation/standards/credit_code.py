"""GB 32100-2015 unified social credit codes (统一社会信用代码), with the GB 11714 organisation-code check."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUES = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def check_character(first17: str) -> str:
    total = sum(VALUES[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def organisation_check_character(body8: str) -> str:
    """GB 11714: digits are their value, A..Z are 10..35."""
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def is_valid_credit_code(code: str | None) -> bool:
    if not code or len(code) != 18 or any(c not in VALUES for c in code):
        return False
    organisation = code[8:17]
    if organisation_check_character(organisation[:8]) != organisation[8]:
        return False
    return check_character(code[:17]) == code[17]


def make_credit_code(authority_and_type: str, region_code: str, org_body8: str) -> str:
    """A valid code (for synthetic data and tests): e.g. ("12", "411502", "MB012345")."""
    organisation = org_body8 + organisation_check_character(org_body8)
    first17 = f"{authority_and_type}{region_code}{organisation}"
    return first17 + check_character(first17)
