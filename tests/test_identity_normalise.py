"""Normalising what institutions record about a person (issue #4 groundwork)."""

from __future__ import annotations

from streams.identity.normalise import names_homophone, normalise_card, normalise_name, normalise_phone


def test_chinese_names_normalise_to_simplified_without_spaces() -> None:
    assert normalise_name(" 張 偉 ").text == "张伟"
    assert normalise_name("ＺＨＡＮＧ　ＷＥＩ").text == "ZHANG WEI"
    assert normalise_name("歐陽娜娜").text == "欧阳娜娜"
    assert normalise_name("") is None and normalise_name("  ") is None and normalise_name("123") is None


def test_pinyin_keys_make_homophones_and_romanised_names_comparable() -> None:
    zhang_wei = normalise_name("张伟")
    assert zhang_wei.pinyin == "zhangwei"
    for other in ("章伟", "張偉", "ZHANG WEI", "Zhang Wei", "zhangwei", "Wei Zhang"):
        assert names_homophone(zhang_wei, normalise_name(other)), other
    assert not names_homophone(zhang_wei, normalise_name("张伟明"))
    assert not names_homophone(zhang_wei, normalise_name("王伟"))


def test_surname_readings() -> None:
    assert normalise_name("曾小贤").pinyin == "zengxiaoxian"  # not "ceng"
    assert normalise_name("单田芳").pinyin.startswith("shan")
    assert normalise_name("欧阳娜娜").pinyin == "ouyangnana"


def test_phone_and_card_normalisation() -> None:
    assert normalise_phone("+86 138-0000-1111") == "13800001111"
    assert normalise_phone("００８６１３８００００１１１１") == "13800001111"
    assert normalise_phone("0376-6221234") == "03766221234"
    assert normalise_phone("12") is None
    assert normalise_card(" hc-4115 0200 12x ") == "HC411502001 2X".replace(" ", "")
