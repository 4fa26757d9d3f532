"""Generate the sample list, ``pd_hlr/datasets/contacts.csv`` (linked as ``data/contacts.csv``).

Run it from the repository root (it rewrites the file byte for byte the same every time)::

    python data/make_contacts.py            # → pd_hlr/datasets/contacts.csv (data/contacts.csv
                                            #   is a link to it; the wheel ships it)
    python data/make_contacts.py --rows 500 --seed 7 --out /tmp/small.csv

Every person, company and phone number is made up. The numbers are built from libphonenumber's
own example numbers (``phonenumbers.example_number_for_type``): the first digits of the example
are kept, the rest are drawn at random, and a candidate is kept only when
``phonenumbers.is_valid_number`` accepts it and its type is the one asked for. So a "valid"
number in the file really is valid for its country (and reaches the sandbox's live / dead / out
of network answers), while nothing was copied from a real address book.

Columns: ``id, first_name, last_name, company, country, phone, signup_date``. ``country`` is
the contact's country (ISO 3166 alpha-2): GB for about half the rows, then US, DE, FR, IE, IN,
AU, ES and NL.

What the ``phone`` column exercises (shares are approximate):

* formats of valid numbers: E.164 (``+447400123456``), international with spaces
  (``+44 7400 123456``), national format of the row's country (``07400 123456``; for GB rows
  this is read correctly with ``default_region="GB"``, for the few non-GB rows written this way
  it is the classic pitfall: read as British, it becomes an invalid number the API calls dead),
  ``00`` international prefix, dashes / dots / brackets (``+44 (0)7400-123-456``,
  ``+1.201.555.0123``), extensions (``ext. 12``, ``x345``; dropped with a note), digits without
  the ``+`` (``447400123456``) and numbers exported by a spreadsheet as floats
  (``447400123456.0``, ``4.47400123456e11``, ``4.47400123456E+11``);
* duplicates: about one row in eight repeats an earlier row's number, written in another format
  (one lookup serves them all);
* mobile and fixed-line numbers (``only_mobile=True`` skips the landlines);
* possible-but-invalid numbers (right length, unallocated range): sent when ``strict=False``,
  answered dead by the API;
* blanks: empty cells, spaces, ``n/a``, ``N/A``, ``-``, ``none`` (→ ``missing`` or ``invalid``);
* junk: ``call me``, ``ask reception``, numbers with letters (``0800 FLOWERS``), too short
  (``07400``), too long (two numbers in one cell), unknown country calling code (``+999 …``).
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date, timedelta
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat as Fmt
from phonenumbers import PhoneNumberType as Type

#: The one copy of the sample: package data (``pd_hlr.datasets.contacts()``).
PACKAGED = Path(__file__).resolve().parents[1] / "pd_hlr" / "datasets" / "contacts.csv"

SEED = 20240917
ROWS = 3000

#: country → weight of contacts from it
COUNTRIES = {
    "GB": 50,
    "US": 11,
    "DE": 8,
    "FR": 7,
    "IE": 6,
    "IN": 6,
    "AU": 5,
    "ES": 4,
    "NL": 3,
}

FIRST_NAMES = {
    "GB": [
        "Oliver",
        "Amelia",
        "George",
        "Isla",
        "Harry",
        "Ava",
        "Jack",
        "Mia",
        "Noah",
        "Grace",
        "Arthur",
        "Freya",
        "Leo",
        "Ivy",
        "Oscar",
        "Poppy",
        "Alfie",
        "Evie",
        "Theo",
        "Rosie",
    ],
    "US": [
        "James",
        "Olivia",
        "Liam",
        "Emma",
        "Ethan",
        "Sophia",
        "Mason",
        "Harper",
        "Logan",
        "Ella",
        "Lucas",
        "Avery",
        "Elijah",
        "Madison",
    ],
    "DE": ["Lukas", "Hannah", "Felix", "Lea", "Jonas", "Lena", "Paul", "Marie", "Finn", "Anna"],
    "FR": [
        "Gabriel",
        "Louise",
        "Raphaël",
        "Chloé",
        "Jules",
        "Inès",
        "Arthur",
        "Léa",
        "Hugo",
        "Manon",
    ],
    "IE": [
        "Jack",
        "Emily",
        "Conor",
        "Aoife",
        "Seán",
        "Niamh",
        "Cian",
        "Saoirse",
        "Darragh",
        "Ciara",
    ],
    "IN": [
        "Aarav",
        "Ananya",
        "Vihaan",
        "Diya",
        "Arjun",
        "Priya",
        "Rohan",
        "Kavya",
        "Ishaan",
        "Meera",
    ],
    "AU": [
        "William",
        "Charlotte",
        "Henry",
        "Matilda",
        "Lachlan",
        "Chloe",
        "Cooper",
        "Ruby",
        "Hudson",
        "Zoe",
    ],
    "ES": [
        "Hugo",
        "Lucía",
        "Martín",
        "Sofía",
        "Mateo",
        "Martina",
        "Pablo",
        "Valeria",
        "Álvaro",
        "Paula",
    ],
    "NL": ["Daan", "Emma", "Sem", "Julia", "Lucas", "Mila", "Levi", "Tess", "Finn", "Sophie"],
}

LAST_NAMES = {
    "GB": [
        "Smith",
        "Jones",
        "Taylor",
        "Brown",
        "Williams",
        "Wilson",
        "Johnson",
        "Davies",
        "Patel",
        "Wright",
        "Robinson",
        "Thompson",
        "Evans",
        "Walker",
        "Hughes",
        "Green",
    ],
    "US": [
        "Miller",
        "Davis",
        "Garcia",
        "Rodriguez",
        "Martinez",
        "Anderson",
        "Thomas",
        "Moore",
        "Jackson",
        "Lee",
        "Harris",
        "Clark",
    ],
    "DE": [
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Hoffmann",
        "Schulz",
    ],
    "FR": [
        "Martin",
        "Bernard",
        "Dubois",
        "Thomas",
        "Robert",
        "Richard",
        "Petit",
        "Durand",
        "Leroy",
        "Moreau",
    ],
    "IE": [
        "Murphy",
        "Kelly",
        "O'Sullivan",
        "Walsh",
        "O'Brien",
        "Byrne",
        "Ryan",
        "O'Connor",
        "O'Neill",
        "McCarthy",
    ],
    "IN": ["Sharma", "Verma", "Gupta", "Iyer", "Reddy", "Nair", "Singh", "Kumar", "Mehta", "Joshi"],
    "AU": [
        "Nguyen",
        "Kelly",
        "King",
        "Harris",
        "Mitchell",
        "Campbell",
        "Young",
        "Scott",
        "Edwards",
        "Cooper",
    ],
    "ES": [
        "García",
        "Fernández",
        "González",
        "Rodríguez",
        "López",
        "Martínez",
        "Sánchez",
        "Pérez",
        "Gómez",
        "Ruiz",
    ],
    "NL": [
        "de Jong",
        "Jansen",
        "de Vries",
        "van den Berg",
        "Bakker",
        "Visser",
        "Smit",
        "Meijer",
        "de Boer",
        "Mulder",
    ],
}

COMPANY_WORDS = (
    [
        "Northwind",
        "Bluefield",
        "Harbour",
        "Kestrel",
        "Meridian",
        "Oakridge",
        "Silverline",
        "Tidewater",
        "Ashgrove",
        "Brightpath",
        "Copperleaf",
        "Foxglove",
        "Granite",
        "Juniper",
    ],
    [
        "Logistics",
        "Analytics",
        "Foods",
        "Dental",
        "Consulting",
        "Software",
        "Interiors",
        "Energy",
        "Travel",
        "Media",
        "Robotics",
        "Fitness",
        "Bakery",
        "Legal",
    ],
    ["Ltd", "plc", "Inc.", "GmbH", "SAS", "Ltd.", "LLC", "B.V.", "S.L.", "Pty Ltd", "& Co", ""],
)

BLANKS = ["", " ", "n/a", "N/A", "-", "none", "  "]
JUNK = [
    "call me",
    "ask reception",
    "see email",
    "0800 FLOWERS",
    "07400 12345a",
    "07400",
    "12345",
    "+999 1234 5678",
    "+44 7400 123456 / 07400 654321",
    "tel",
    "?",
    "+44",
]


def _valid_numbers(
    rng: random.Random, region: str, kind: int, keep: int, count: int
) -> list[phonenumbers.PhoneNumber]:
    """``count`` distinct valid numbers of one type: the example number's first ``keep``
    national digits, the rest random, kept only when phonenumbers says valid and of ``kind``."""
    example = phonenumbers.example_number_for_type(region, kind)
    national = str(example.national_number)
    head, width = national[:keep], len(national) - keep
    seen: set[int] = set()
    out: list[phonenumbers.PhoneNumber] = []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > count * 400:
            raise RuntimeError(f"cannot make {count} valid {region} numbers of type {kind}")
        tail = "".join(rng.choice("0123456789") for _ in range(width))
        candidate = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(head + tail)
        )
        if candidate.national_number in seen or not phonenumbers.is_valid_number(candidate):
            continue
        if phonenumbers.region_code_for_number(candidate) != region:
            continue  # e.g. a Canadian area code for US, a Jersey mobile for GB
        ntype = phonenumbers.number_type(candidate)
        if ntype != kind and not (
            ntype == Type.FIXED_LINE_OR_MOBILE and kind in (Type.MOBILE, Type.FIXED_LINE)
        ):
            continue
        seen.add(candidate.national_number)
        out.append(candidate)
    return out


def _possible_invalid(rng: random.Random) -> str:
    """A GB number of the right length in an unallocated range: possible, not valid."""
    while True:
        candidate = "+44 10" + "".join(rng.choice("0123456789") for _ in range(8))
        n = phonenumbers.parse(candidate)
        if phonenumbers.is_possible_number(n) and not phonenumbers.is_valid_number(n):
            return candidate


def _format(rng: random.Random, n: phonenumbers.PhoneNumber, row_country: str) -> str:
    """One way a person might have typed (or a system exported) the number ``n``."""
    e164 = phonenumbers.format_number(n, Fmt.E164)
    intl = phonenumbers.format_number(n, Fmt.INTERNATIONAL)
    national = phonenumbers.format_number(n, Fmt.NATIONAL)
    digits = e164[1:]
    region = phonenumbers.region_code_for_number(n)
    styles = [
        ("e164", 28),
        ("intl", 24),
        ("national", 22 if region == "GB" else 2),
        ("00", 6),
        ("punct", 8),
        ("ext", 3),
        ("digits", 3),
        ("float", 3),
        ("sci", 3),
    ]
    style = rng.choices([s for s, _ in styles], [w for _, w in styles])[0]
    if style == "e164":
        return e164
    if style == "intl":
        return intl
    if style == "national":
        return national
    if style == "00":
        return "00" + intl[1:]
    if style == "punct":
        groups = intl[1:].split(" ")
        sep = rng.choice(["-", ".", "-"])
        if region == "GB" and len(groups) > 1 and rng.random() < 0.5:
            return f"+44 (0){groups[1]}-{'-'.join(groups[2:])}"
        if region in ("US",) and rng.random() < 0.6:
            return national.replace(") ", ")-") if rng.random() < 0.5 else "+1 " + national
        return "+" + sep.join(groups)
    if style == "ext":
        ext = str(rng.randint(2, 4999))
        return rng.choice([f"{intl} ext. {ext}", f"{intl} x{ext}", f"{e164} ext {ext}"])
    if style == "digits":
        return digits
    if style == "float":
        return f"{digits}.0"
    # "sci": a spreadsheet's scientific notation (exact: every digit kept)
    mantissa = f"{digits[0]}.{digits[1:]}"
    return rng.choice([f"{mantissa}e{len(digits) - 1}", f"{mantissa}E+{len(digits) - 1}"])


def make_rows(rows: int = ROWS, seed: int = SEED) -> list[dict[str, str]]:
    """The contact list as a list of dicts (deterministic for a given ``rows`` and ``seed``)."""
    rng = random.Random(seed)
    countries = list(COUNTRIES)
    weights = list(COUNTRIES.values())
    pools: dict[str, list[phonenumbers.PhoneNumber]] = {}
    for region in countries:
        share = COUNTRIES[region] / sum(weights)
        need = int(rows * share) + 20
        mobiles = _valid_numbers(rng, region, Type.MOBILE, 1, int(need * 0.85))
        landlines = _valid_numbers(rng, region, Type.FIXED_LINE, 1, int(need * 0.15) + 1)
        pool = mobiles + landlines
        rng.shuffle(pool)
        pools[region] = pool

    start = date(2019, 1, 1)
    span = (date(2025, 12, 31) - start).days
    used: list[tuple[phonenumbers.PhoneNumber, str]] = []
    out: list[dict[str, str]] = []
    for i in range(rows):
        country = rng.choices(countries, weights)[0]
        roll = rng.random()
        if roll < 0.035:
            phone = rng.choice(BLANKS)
        elif roll < 0.075:
            phone = rng.choice(JUNK)
        elif roll < 0.085:
            phone = _possible_invalid(rng)
        elif roll < 0.21 and used:
            number, first_country = rng.choice(used)
            country = first_country  # the same person or company, entered twice
            phone = _format(rng, number, country)
        else:
            pool = pools[country]
            number = pool.pop() if pool else rng.choice(used)[0]
            used.append((number, country))
            phone = _format(rng, number, country)
        first = rng.choice(FIRST_NAMES[country])
        last = rng.choice(LAST_NAMES[country])
        words = COMPANY_WORDS
        company = " ".join(
            w for w in (rng.choice(words[0]), rng.choice(words[1]), rng.choice(words[2])) if w
        )
        out.append(
            {
                "id": str(100001 + i),
                "first_name": first,
                "last_name": last,
                "company": company,
                "country": country,
                "phone": phone,
                "signup_date": (start + timedelta(days=rng.randrange(span))).isoformat(),
            }
        )
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Write the rows as UTF-8 CSV with ``\\n`` line endings (byte-for-byte reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=PACKAGED)
    args = parser.parse_args(argv)
    rows = make_rows(args.rows, args.seed)
    write_csv(args.out, rows)
    print(f"wrote {len(rows):,} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
