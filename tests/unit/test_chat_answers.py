"""The answer database on a catalog it was not tuned on (earbuds and a skillet): product
words across languages, catalog triggers that name no known concept, specific concepts
that only a matching entry may answer, products the catalog does not have, and the
FTS5 index behind it."""

from __future__ import annotations

import pytest

from livetwin.chat.answers import AnswerDB
from livetwin.events import Product

BUDS = Product(id="buds", name="Nova Wireless Earbuds", price=199, currency="EUR",
               list_price=249, stock=40,
               facts=("30 hours of battery with the case", "IPX4 splash resistant"),
               faq=((("battery", "akku", "续航"), "The battery lasts 30 hours with the case."),
                    (("waterproof", "wasserdicht", "防水"),
                     "They are IPX4 splash resistant, not for swimming.")))
PAN = Product(id="pan", name="Cast Iron Skillet 28 cm", price=349, currency="CNY", stock=12,
              facts=("works on induction", "pre-seasoned"),
              faq=((("induction", "电磁炉", "Induktion"), "Yes, it works on induction hobs."),))


@pytest.fixture(scope="module")
def db() -> AnswerDB:
    return AnswerDB([BUDS, PAN])


@pytest.mark.parametrize(("question", "product", "needle"), [
    ("how much are the earbuds", "buds", "199"),
    ("耳机多少钱", "buds", "199"),
    ("was kosten die Kopfhörer?", "buds", "199"),
    ("wie lange hält der Akku", "buds", "30 hours"),
    ("耳机续航多久", "buds", "30 hours"),
    ("can I swim with the earbuds?", "buds", "not for swimming"),
    ("does the pan work on induction", "pan", "induction"),
    ("平底锅能用电磁炉吗", "pan", "induction"),
    ("how many skillets are left?", "pan", "12"),
    ("how many pans are left", "pan", "12"),  # 'pan' and 'skillet' are one product word
])
def test_answers(db: AnswerDB, question: str, product: str, needle: str) -> None:
    answer = db.answer(question)
    assert answer is not None, question
    assert [p[0] for p in answer.parts] == [product]
    assert needle in answer.parts[0][1]


@pytest.mark.parametrize("question", [
    "is the skillet dishwasher safe?",  # the catalog does not say
    "Ist die Pfanne spülmaschinenfest?",
    "how much does shipping cost?",  # shipping, not the price
    "are the earbuds noise cancelling?",
    "do you sell phone cases?",  # a kind of product the catalog does not have
    "nice stream today",
])
def test_no_guessing(db: AnswerDB, question: str) -> None:
    answer = db.answer(question)
    assert answer is None, answer


def test_ambiguous_questions(db: AnswerDB) -> None:
    both = db.answer("how much?")
    assert both is not None and {p[0] for p in both.parts} == {"buds", "pan"}
    assert all(p[2] == "en" for p in both.parts)
    on_screen = db.answer("how much?", current="pan")
    assert on_screen is not None and [p[0] for p in on_screen.parts] == ["pan"]
    zh = db.answer("多少钱", current="pan")
    assert zh is not None and zh.parts[0][2] == "zh" and "349" in zh.parts[0][1]


def test_the_index_is_sqlite_fts5(db: AnswerDB) -> None:
    rows = db._db.execute("SELECT count(*) FROM entries WHERE entries MATCH 'induction'")
    assert rows.fetchone()[0] >= 1
    assert db.candidates("induction", frozenset(), frozenset())
