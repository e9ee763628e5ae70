"""GB 11643 and GB 32100 check characters against published examples."""

from __future__ import annotations

import datetime as dt

from foundation.standards.citizen_id import make_citizen_id, parse_citizen_id
from foundation.standards.credit_code import is_valid_credit_code, make_credit_code


def test_citizen_id_check_character_and_parts() -> None:
    parsed = parse_citizen_id("11010519491231002X")  # the example printed in GB 11643-1999
    assert parsed is not None and parsed.valid
    assert (parsed.area_code, parsed.birth_date, parsed.sex) == ("110105", dt.date(1949, 12, 31), "2")


def test_citizen_id_normalisation() -> None:
    full_width = "１１０１０５１９４９１２３１００２ｘ"
    assert parse_citizen_id(full_width).number == "11010519491231002X"
    assert parse_citizen_id(" 110105 19491231 002x ").valid
    fifteen = parse_citizen_id("110105491231002")
    assert fifteen.number == "11010519491231002X" and fifteen.valid


def test_bad_check_character_is_evidence_not_key() -> None:
    parsed = parse_citizen_id("110105194912310021")
    assert parsed is not None and not parsed.valid
    assert parsed.birth_date == dt.date(1949, 12, 31) and parsed.area_code == "110105"
    assert parse_citizen_id("12345") is None


def test_generated_citizen_ids_are_valid() -> None:
    for seq in range(0, 1000, 37):
        number = make_citizen_id("411502", dt.date(1990, 2, 28), seq)
        assert parse_citizen_id(number).valid
        assert parse_citizen_id(number).sex == ("1" if seq % 2 else "2")


def test_credit_code() -> None:
    assert is_valid_credit_code("91350100M000100Y43")  # the example in GB 32100-2015
    assert not is_valid_credit_code("91350100M000100Y44")
    assert not is_valid_credit_code("91350100M000100Y4")
    code = make_credit_code("12", "411502", "MB012345")
    assert is_valid_credit_code(code) and code.startswith("12411502")


def test_event_ids_are_rfc_4122_uuid5_of_the_source_row() -> None:
    import uuid

    from avro_schemas.envelope import EVENT_ID_NAMESPACE, make_event_id

    for version, cancelled in ((1, False), (2, False), (2, True)):
        name = f"ORG\x1ftable:1\x1f{version}" + ("\x1fcancelled" if cancelled else "")
        assert make_event_id("ORG", "table:1", version, cancelled) == str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
    assert make_event_id("ORG", "table:1", 2) != make_event_id("ORG", "table:1", 2, cancelled=True)
