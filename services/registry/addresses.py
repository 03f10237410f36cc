"""Pre-July-2025 addresses (ward, district, province) mapped onto the current communes with `vietnamadminunits`.

Only the ward, district and province are handed to the converter, never a street: given a street, the package
geocodes the address through a public web service, which would send personal data out and block on the network.
"""

from vietnamadminunits import convert_address, parse_address
from vietnamadminunits.parser import ParseMode

from services.common.locations import communes, provinces
from services.registry.schemas import AddressConversion, CommuneRead, ProvinceRead


def convert_old_address(address: str) -> AddressConversion:
    """Blocking (the package parses in Python and reads SQLite): call it from a worker thread."""
    old = parse_address(address, mode=ParseMode.LEGACY, keep_street=False, level=3)
    if not old.province:
        return AddressConversion(old_ward=None, old_district=None, old_province=None, old_ward_code=None,
                                 commune=None, province=None)
    without_street = ", ".join(part for part in (old.ward, old.district, old.province) if part)
    new = convert_address(without_street)
    commune = communes().get(new.ward_code or "")
    province = provinces().get(new.province_code or "")
    return AddressConversion(
        old_ward=old.ward, old_district=old.district, old_province=old.province, old_ward_code=old.ward_code,
        commune=CommuneRead(**vars(commune)) if commune else None,
        province=ProvinceRead(**vars(province)) if province else None,
    )
