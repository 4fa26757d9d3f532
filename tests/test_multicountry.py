"""A multi-country contact list, read row by row in each row's country (``region_column``):
Faker's national-format numbers of 16 locales, a country column written every way CRM exports
write it, and libphonenumber (``parse(cell, region)`` + ``is_valid_number``) as the truth.

Measured per face (pandas, Polars, Dask; all against the sandbox over real HTTP, no cache):
*wrong keys* (a row sent with a key that is not its valid number) and *valid numbers not sent*,
as shares of all rows. Targets: ≤ 1 % and ≤ 3 %.
"""

from __future__ import annotations

import random
from typing import Any

import pandas as pd
import phonenumbers
import pytest

import pd_hlr  # noqa: F401  (registers the accessor)

faker = pytest.importorskip("faker")

#: Faker locale → ISO region, and how the country column may write that region: written by
#: hand here (the independent truth for pd_hlr.regions), never computed with pycountry.
COUNTRIES: dict[str, tuple[str, list[Any]]] = {
    "en_GB": ("GB", ["GB", "gb", "GBR", "United Kingdom", "UK", "Great Britain", "+44", 44]),
    "en_US": ("US", ["US", "usa", "USA", "United States", "United States of America", "+1"]),
    "de_DE": ("DE", ["DE", "de", "DEU", "Germany", "Deutschland", "+49", "0049", 49]),
    "fr_FR": ("FR", ["FR", "FRA", "France", "+33", "33"]),
    "es_ES": ("ES", ["ES", "es", "ESP", "Spain", "España", "Espana", "+34"]),
    "it_IT": ("IT", ["IT", "ITA", "Italy", "Italia", "+39", 39]),
    "nl_NL": ("NL", ["NL", "NLD", "Netherlands", "Nederland", "Holland", "+31"]),
    "en_IE": ("IE", ["IE", "IRL", "Ireland", "Éire", "+353", "00353"]),
    "en_AU": ("AU", ["AU", "AUS", "Australia", "+61", 61]),
    "en_IN": ("IN", ["IN", "IND", "India", "भारत", "+91"]),
    "pt_BR": ("BR", ["BR", "BRA", "Brazil", "Brasil", "+55"]),
    "pl_PL": ("PL", ["PL", "POL", "Poland", "Polska", "+48"]),
    "sv_SE": ("SE", ["SE", "SWE", "Sweden", "Sverige", "+46"]),
    "de_AT": ("AT", ["AT", "AUT", "Austria", "Österreich", "+43"]),
    "de_CH": ("CH", ["CH", "CHE", "Switzerland", "Schweiz", "Suisse", "+41"]),
    "en_CA": ("CA", ["CA", "CAN", "Canada", "+1"]),  # +1: read as US, the same E.164 numbers
}
ROWS_PER_COUNTRY = 120
SENT = ("api", "cache", "error")


def _truth(cell: str, region: str) -> str | None:
    """libphonenumber's valid E.164 number for the cell read in its region, else None."""
    try:
        number = phonenumbers.parse(cell, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.fixture(scope="module")
def contacts() -> pd.DataFrame:
    rng = random.Random(23)
    rows = []
    for locale, (region, writings) in COUNTRIES.items():
        fake = faker.Faker(locale)
        fake.seed_instance(23)
        for _ in range(ROWS_PER_COUNTRY):
            cell = fake.phone_number()
            rows.append((cell, rng.choice(writings), region, _truth(cell, region)))
    frame = pd.DataFrame(rows, columns=["phone", "country", "region", "truth"])
    frame["country"] = frame["country"].astype(object)  # mixed: text and ints, as CSVs give
    return frame


def _measure(contacts: pd.DataFrame, keys: pd.Series, sources: pd.Series) -> dict[str, float]:
    keys = pd.Series(keys.to_numpy(dtype=object, na_value=None), index=contacts.index)
    sent = pd.Series(sources.to_numpy(dtype=object), index=contacts.index).isin(SENT)
    valid = contacts["truth"].notna()
    wrong = sent & valid & (keys != contacts["truth"])
    not_sent = valid & ~sent
    n = len(contacts)
    return {"wrong": wrong.sum() / n, "not_sent": not_sent.sum() / n, "valid": valid.sum() / n}


def _check(rates: dict[str, float], face: str) -> None:
    print(f"{face}: " + ", ".join(f"{k} {v:.2%}" for k, v in rates.items()))  # pytest -s
    assert rates["valid"] > 0.5, "the generated list must be mostly valid numbers"
    assert rates["wrong"] <= 0.01, rates
    assert rates["not_sent"] <= 0.03, rates


def test_the_list_is_multi_country_and_written_every_way(contacts: pd.DataFrame) -> None:
    assert contacts["region"].nunique() >= 12
    assert contacts["country"].map(type).nunique() == 2  # str and int
    assert contacts["country"].nunique() > 60


def test_without_the_region_column_a_default_region_reads_foreign_numbers_wrong(
    contacts: pd.DataFrame, sandbox_server: Any, client_for: Any
) -> None:
    """The baseline the region column fixes: one default region for the whole list."""
    client = client_for(sandbox_server)
    out = contacts.hlr.validate("phone", default_region="GB", client=client, cache=False)
    rates = _measure(contacts, out["to"], out["hlr_source"])
    print("default_region='GB' alone: " + ", ".join(f"{k} {v:.2%}" for k, v in rates.items()))
    assert rates["wrong"] > 0.05 or rates["not_sent"] > 0.2, rates


def test_pandas_face(contacts: pd.DataFrame, sandbox_server: Any, client_for: Any) -> None:
    client = client_for(sandbox_server)
    out = contacts.hlr.validate("phone", region_column="country", client=client, cache=False)
    _check(_measure(contacts, out["to"], out["hlr_source"]), "pandas")
    report = out.hlr.report()
    assert report.regions == {"own": len(contacts), "blank": 0, "unrecognised": 0}
    assert report.rows == len(contacts)


def test_pandas_face_categorical_region_column(
    contacts: pd.DataFrame, sandbox_server: Any, client_for: Any
) -> None:
    frame = contacts.assign(country=contacts["country"].astype(str).astype("category"))
    client = client_for(sandbox_server)
    out = frame.hlr.validate("phone", region_column="country", client=client, cache=False)
    _check(_measure(contacts, out["to"], out["hlr_source"]), "pandas, categorical")


def test_polars_face(contacts: pd.DataFrame, sandbox_server: Any, client_for: Any) -> None:
    pl = pytest.importorskip("polars")
    import pd_hlr.polars  # noqa: F401

    frame = pl.from_pandas(contacts[["phone"]].assign(country=contacts["country"].astype(str)))
    client = client_for(sandbox_server)
    for obj in (frame, frame.lazy()):
        out = obj.hlr.validate("phone", region_column="country", client=client, cache=False)
        out = out.collect() if isinstance(out, pl.LazyFrame) else out
        rates = _measure(contacts, out["to"].to_pandas(), out["hlr_source"].to_pandas())
        _check(rates, type(obj).__name__)
        assert obj.hlr.estimate("phone", region_column="country", cache=False).regions["own"] == (
            len(contacts)
        )


def test_dask_face(contacts: pd.DataFrame, sandbox_server: Any, client_for: Any) -> None:
    dask = pytest.importorskip("dask")
    import dask.dataframe as dd

    import pd_hlr.dask  # noqa: F401

    ddf = dd.from_pandas(contacts[["phone", "country"]], npartitions=4)
    client = client_for(sandbox_server)
    with dask.config.set(scheduler="sync"):
        out = ddf.hlr.validate("phone", region_column="country", client=client, cache=False)
        result = out.compute()
    _check(_measure(contacts, result["to"], result["hlr_source"]), "dask")
    assert out.hlr.report().regions["own"] == len(contacts)


def test_one_number_in_two_countries_rows_is_one_lookup(sb: Any, client_for: Any) -> None:
    """Dedup stays global: the same number written nationally in DE and with +49 in a GB row."""
    frame = pd.DataFrame(
        {
            "phone": ["030 901820", "+49 30 901820", "0049 30 901820", "030 901820"],
            "country": ["Deutschland", "GB", "FR", "+49"],
        }
    )
    out = frame.hlr.validate("phone", region_column="country", client=client_for(sb), cache=False)
    assert out["to"].tolist() == ["+4930901820"] * 4
    assert out.hlr.report().looked_up == 1
    assert sb.stats().received == {"+4930901820": 1}
