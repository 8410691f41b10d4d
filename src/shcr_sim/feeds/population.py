"""Synthetic people: NHS number, UK name, address, postcode, GP practice, phone.

Each person is built from their own ``random.Random`` stream so patient *n* is the
same whatever the population size or the order of generation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .catalogue import People, load_people
from .nhs import make_nhs_number

_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # postcode inward letters (no C I K M O V)


@dataclass(slots=True)
class Address:
    line1: str
    line2: str
    town: str
    postcode: str


@dataclass(slots=True)
class Person:
    index: int
    nhs: str | None  # None: known only by local MRNs
    verification: int  # NHS number verification status 1..8 (1 = verified)
    surname: str
    given: str
    middle: str
    title: str
    sex: str  # M / F / U
    dob: str  # YYYYMMDD
    birth_year: int
    address: Address
    phone: str
    mobile: str
    practice: tuple[str, str, int]  # code, name, town index
    gp: tuple[str, str, str]  # code, surname, given
    ethnicity: str
    allergies: tuple[int, ...]  # indices into the allergen catalogue
    frailty: float  # scales how often this person needs care
    died: int | None = None  # epoch of death, when it falls inside the simulated window
    next_of_kin: tuple[str, str, str, str] | None = None  # surname, given, relation, phone

    def copy(self) -> Person:
        """A trust's own view of the person (demographics drift per trust)."""
        return replace(self, address=replace(self.address))


def make_address(rng: random.Random, people: People, town_index: int | None = None) -> Address:
    if town_index is None:
        town_index = rng.randrange(len(people.towns))
    town, area, districts = people.towns[town_index]
    number = rng.randint(1, 180)
    street = people.streets[rng.randrange(len(people.streets))]
    flat = rng.random() < 0.12
    line1 = f"Flat {rng.randint(1, 24)}, {number} {street}" if flat else f"{number} {street}"
    district = rng.randint(1, districts)
    postcode = (
        f"{area}{district} {rng.randint(1, 9)}"
        f"{_LETTERS[rng.randrange(20)]}{_LETTERS[rng.randrange(20)]}"
    )
    return Address(line1, "", town, postcode)


def make_person(
    seed: int, index: int, no_nhs_share: float, ref_year: int, people: People | None = None
) -> Person:
    """Person number ``index`` of the population with this seed."""
    people = people or load_people()
    rng = random.Random(f"{seed}:person:{index}")
    sex = "F" if rng.random() < 0.51 else "M"
    if rng.random() < 0.002:
        sex = "U"
    names = people.female if sex == "F" else people.male
    given = names[rng.randrange(len(names))]
    middle = names[rng.randrange(len(names))] if rng.random() < 0.6 else ""
    surname = people.surnames[rng.randrange(len(people.surnames))]
    age = min(int(rng.triangular(0, 100, 45)), 104)
    birth_year = ref_year - age
    dob = f"{birth_year:04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if age < 16:
        title = ""
    elif sex == "F":
        title = rng.choice(("Mrs", "Miss", "Ms", "Dr"))
    elif sex == "M":
        title = "Dr" if rng.random() < 0.03 else "Mr"
    else:
        title = "Mx"
    town_index = rng.randrange(len(people.towns))
    address = make_address(rng, people, town_index)
    local_practices = [p for p in people.practices if p[2] == town_index] or list(people.practices)
    practice = local_practices[rng.randrange(len(local_practices))]
    gp = people.gps[rng.randrange(len(people.gps))]
    no_nhs = rng.random() < no_nhs_share
    nhs = None if no_nhs else make_nhs_number(rng)
    verification = 1 if rng.random() < 0.9 else rng.choice((2, 3, 4))
    next_of_kin = None
    if rng.random() < 0.6:
        if age < 18:
            relation = "PAR"
        elif age > 75:
            relation = rng.choice(("CHD", "CHD", "SPO"))
        else:
            relation = rng.choice(("SPO", "SPO", "PAR", "SIB", "FND"))
        kin_names = people.female if rng.random() < 0.5 else people.male
        kin_surname = surname if relation in ("PAR", "CHD", "SIB") or rng.random() < 0.6 else \
            people.surnames[rng.randrange(len(people.surnames))]
        next_of_kin = (kin_surname, kin_names[rng.randrange(len(kin_names))], relation,
                       f"07700 {rng.randint(900000, 900999)}")
    n_allergies = 0 if rng.random() < 0.8 else rng.randint(1, 2)
    allergies = tuple(sorted(rng.sample(range(6), n_allergies)))
    return Person(
        index=index,
        nhs=nhs,
        verification=verification,
        surname=surname,
        given=given,
        middle=middle,
        title=title,
        sex=sex,
        dob=dob,
        birth_year=birth_year,
        address=address,
        phone=f"01632 {rng.randint(960000, 960999)}",
        mobile=f"07700 {rng.randint(900000, 900999)}",
        practice=practice,
        gp=gp,
        ethnicity=people.ethnicity[rng.randrange(len(people.ethnicity))],
        allergies=allergies,
        frailty=0.4 + age / 55.0,
        next_of_kin=next_of_kin,
    )
