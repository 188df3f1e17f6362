"""The README's accuracy table quotes the model cards; `greenmatrix train` rewrites the cards, so a
retrain that moves a figure must move the README with it. Each README figure is checked against the
card row it quotes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CARDS = ROOT / "models"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", cell)]


def _readme_row(label: str, held_out: str = "") -> list[str]:
    rows = [
        _cells(line) for line in README.splitlines() if line.startswith(f"| {label} |") and held_out in line
    ]
    assert len(rows) == 1, f"README: expected one row '{label}' ({held_out!r}), found {len(rows)}"
    return rows[0]


def _card_row(card: str, *key: str) -> list[str]:
    lines = (CARDS / card).read_text().splitlines()
    rows = [_cells(line) for line in lines if line.startswith("| ") and _cells(line)[: len(key)] == list(key)]
    assert rows, f"{card}: no table row starting with {key}"
    return rows[0]


def _card_figures(row: list[str], skip: int) -> list[float]:
    """n, MAPE model, MAPE roofline, MAPE profiled, coverage of a card row."""
    return [float(c) for c in row[skip : skip + 5]]


SERVING = [
    ("LLM serving TPOT", "each GPU type", ("each gpu in turn", "tpot")),
    ("LLM serving TTFT", "each GPU type", ("each gpu in turn", "ttft")),
]
ROUNDS = [
    ("MLPerf inference throughput", "each GPU type", "mlperf_inference.md", ("gpu=each (pooled)",)),
    ("MLPerf inference throughput", "later round", "mlperf_inference.md", ("round=v4.0",)),
    ("MLPerf training time", "each GPU type", "training_time.md", ("gpu=each (pooled)",)),
    ("MLPerf training time", "later round", "training_time.md", ("round=v2.1",)),
]


@pytest.mark.parametrize(("label", "held_out", "key"), SERVING)
def test_serving_rows_quote_the_card(label: str, held_out: str, key: tuple[str, str]) -> None:
    readme = _readme_row(label, held_out)
    figures = [_numbers(c)[0] for c in readme[2:7]]
    assert figures == _card_figures(_card_row("serving.md", *key), 2)


@pytest.mark.parametrize(
    ("held_out", "card_label"),
    [("each model", "each model in turn"), ("rows at random", "rows at random (GPU and model measured)")],
)
def test_serving_paired_rows_quote_the_card(held_out: str, card_label: str) -> None:
    readme = _readme_row("LLM serving TPOT / TTFT", held_out)
    tpot = _card_figures(_card_row("serving.md", card_label, "tpot"), 2)
    ttft = _card_figures(_card_row("serving.md", card_label, "ttft"), 2)
    assert _numbers(readme[2]) == [tpot[0]]
    for column, cell in enumerate(readme[3:7], start=1):
        assert _numbers(cell) == [tpot[column], ttft[column]], f"README column {column + 3}: {cell}"


@pytest.mark.parametrize(("label", "held_out", "card", "key"), ROUNDS)
def test_mlperf_rows_quote_the_card(label: str, held_out: str, card: str, key: tuple[str, ...]) -> None:
    readme = _readme_row(label, held_out)
    figures = [_numbers(c)[0] for c in readme[2:7]]
    assert figures == _card_figures(_card_row(card, *key), 1)


def test_later_round_split_quotes_the_card() -> None:
    split = _readme_row("... of which benchmarks run before v4.0 / new in v4.0")
    earlier = _card_figures(_card_row("mlperf_inference.md", "round=v4.0,benchmarks=earlier"), 1)
    new = _card_figures(_card_row("mlperf_inference.md", "round=v4.0,benchmarks=new"), 1)
    assert _numbers(split[2]) == [earlier[0], new[0]]
    assert _numbers(split[3]) == [earlier[1], new[1]]
    assert _numbers(split[6]) == [earlier[4], new[4]]
    known = _readme_row("... of which rows whose GPU type ran the same benchmark and scenario before")
    row = _card_row("mlperf_inference.md", "round=v4.0,last result known")
    assert _numbers(known[2]) == [float(row[1])]
    assert _numbers(known[3]) == [float(row[2]), float(row[6])]  # the model, then the earlier result
    assert _numbers(known[6]) == [float(row[5])]


def _figure(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"no match for {pattern!r}"
    return float(found.group(1))


def test_serving_consistency_floor_quotes_the_card() -> None:
    card = (CARDS / "serving.md").read_text()
    ttft, tpot = (_figure(rf"(\d+\.\d)% for {t} \(\d+ rows\)", card) for t in ("TTFT", "TPOT"))
    text = " ".join(README.split())
    quoted = re.search(r"is already off by (\d+\.\d)% for TPOT and (\d+\.\d)% for TTFT", text)
    assert quoted, "README: the concurrency-sweep consistency sentence is missing"
    assert (float(quoted.group(1)), float(quoted.group(2))) == (tpot, ttft)


def test_serving_median_figures_quote_the_card() -> None:
    card = " ".join((CARDS / "serving.md").read_text().split())
    text = " ".join(README.split())
    pair = r"(\d+\.\d)% / (\d+\.\d)%"
    sentence = rf"leave-one-GPU-out TPOT/TTFT was {pair} and leave-one-architecture-out {pair}"
    in_card = re.search(sentence, card)
    in_readme = re.search(rf"the serving rows above read {pair} \(GPU types\) and {pair} \(models\)", text)
    assert in_card and in_readme, "the median figures' sentence is missing from the card or the README"
    assert in_readme.groups() == in_card.groups()


def test_serving_interval_bands_quote_the_card() -> None:
    card = (CARDS / "serving.md").read_text()

    def band(target: str, case: str) -> str:
        lo, hi = (
            float(x)
            for x in re.search(
                rf"\*\*{target} log-offsets \(p10, p90\), {case}\*\*: (\S+), (\S+)", card
            ).groups()
        )
        return f"x{math.exp(lo):.2f}-{math.exp(hi):.2f}"

    text = " ".join(README.split())
    measured = f"runs {band('tpot', 'GPU and model measured together')} of the median for TPOT, " + (
        f"{band('ttft', 'GPU and model measured together')} for TTFT"
    )
    new = f"runs {band('tpot', 'new GPU or model')} and {band('ttft', 'new GPU or model')}"
    assert measured in text, measured
    assert new in text, new


def test_serving_per_group_figures_quote_the_card() -> None:
    """The README's 'each held-out group once' coverage and error are the card's last two columns."""
    order = [(kind, target) for kind in ("gpu", "model") for target in ("tpot", "ttft")]
    # The card's last two columns: MAPE and coverage with each held-out group once.
    last_two = {key: _card_row("serving.md", f"each {key[0]} in turn", key[1])[-2:] for key in order}
    text = " ".join(README.split())
    pair = r"(\d+\.\d+) / (\d+\.\d+)"
    percents = r"(\d+\.\d+)% / (\d+\.\d+)%"
    found = re.search(
        rf"serving coverage is {pair} \(TPOT / TTFT, GPU types\) and {pair} \(models\), inside 0.75-0.85, "
        rf"where the error reads {percents} and {percents}",
        text,
    )
    assert found, "README: the per-group coverage sentence is missing"
    quoted = [float(x) for x in found.groups()]
    card = [float(last_two[key][1]) for key in order] + [float(last_two[key][0]) for key in order]
    assert quoted == card
    assert all(0.75 <= c <= 0.85 for c in card[:4]), "the README says the per-group coverage is in band"
