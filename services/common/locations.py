"""Official administrative units (34 provinces, 3,321 communes since 1 July 2025), from `vietnam-provinces`.

Codes are strings as published: provinces two digits ("01"), communes five digits ("00070").
"""

from dataclasses import dataclass
from functools import cache

import vietnam_provinces as vp


@dataclass(frozen=True)
class Commune:
    code: str
    name: str
    division_type: str
    province_code: str


@dataclass(frozen=True)
class Province:
    code: str
    name: str
    division_type: str


@cache
def provinces() -> dict[str, Province]:
    return {
        f"{p.code.value:02d}": Province(f"{p.code.value:02d}", p.name, p.division_type.value)
        for p in vp.Province.iter_all()
    }


@cache
def communes() -> dict[str, Commune]:
    return {
        f"{w.code.value:05d}": Commune(f"{w.code.value:05d}", w.name, w.division_type.value,
                                        f"{w.province_code.value:02d}")
        for w in vp.Ward.iter_all()
    }


def province_of(commune_code: str) -> str | None:
    commune = communes().get(commune_code)
    return commune.province_code if commune else None


def is_commune(code: str) -> bool:
    return code in communes()


def is_province(code: str) -> bool:
    return code in provinces()
