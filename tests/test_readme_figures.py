"""The README's accuracy table and docs/accuracy.md quote the model cards; `greenmatrix train`
rewrites the cards, so a retrain that moves a figure must move the text with it. Each quoted figure
is checked against the card row or sentence it quotes, and each claim the text makes about the
figures (beats the roofline, meets or misses its target) against the figures themselves."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "models"
README = "README.md"
ACCURACY = "docs/accuracy.md"
TABLE_HEADER = "| model | held out | n | MAPE model |"


def _text(document: str) -> str:
    return (ROOT / document).read_text()


def _flat(document: str) -> str:
    """The document with line breaks folded, so a sentence matches however it is wrapped."""
    return " ".join(_text(document).split())


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", cell)]


def _accuracy_table(document: str) -> list[list[str]]:
    """The data rows of the document's one accuracy table."""
    lines = _text(document).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(TABLE_HEADER)]
    assert len(starts) == 1, f"{document}: expected one accuracy table, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def _row(document: str, label: str, held_out: str = "") -> list[str]:
    rows = [r for r in _accuracy_table(document) if r[0] == label and held_out in r[1]]
    assert len(rows) == 1, f"{document}: expected one row '{label}' ({held_out!r}), found {len(rows)}"
    return rows[0]


def _card_row(card: str, *key: str) -> list[str]:
    lines = (CARDS / card).read_text().splitlines()
    rows = [_cells(line) for line in lines if line.startswith("| ") and _cells(line)[: len(key)] == list(key)]
    assert rows, f"{card}: no table row starting with {key}"
    return rows[0]


def _card_figures(row: list[str], skip: int) -> list[float]:
    """n, MAPE model, MAPE roofline, MAPE profiled, coverage of a card row."""
    return [float(c) for c in row[skip : skip + 5]]


def _percent(value: float) -> str:
    """A card figure as the prose rounds it (19.0 -> '19%')."""
    return f"{round(value)}%"


@dataclass(frozen=True)
class Quoted:
    """One row of an accuracy table and the card row it quotes."""

    label: str
    held_out: str
    card: str
    key: tuple[str, ...]
    documents: tuple[str, ...]


BOTH = (README, ACCURACY)
SINGLE_ROWS = [
    Quoted("LLM serving TPOT", "each GPU type", "serving.md", ("each gpu in turn", "tpot"), BOTH),
    Quoted("LLM serving TTFT", "each GPU type", "serving.md", ("each gpu in turn", "ttft"), BOTH),
    Quoted(
        "MLPerf inference throughput", "each GPU type", "mlperf_inference.md", ("gpu=each (pooled)",), BOTH
    ),
    Quoted("MLPerf inference throughput", "later round", "mlperf_inference.md", ("round=v4.0",), BOTH),
    Quoted("MLPerf training time", "each GPU type", "training_time.md", ("gpu=each (pooled)",), BOTH),
    Quoted("MLPerf training time", "later round", "training_time.md", ("round=v2.1",), BOTH),
]
PAIRED_ROWS = [
    Quoted("LLM serving TPOT / TTFT", "each model", "serving.md", ("each model in turn",), BOTH),
    Quoted(
        "LLM serving TPOT / TTFT",
        "rows at random",
        "serving.md",
        ("rows at random (GPU and model measured)",),
        (ACCURACY,),
    ),
]
SPLIT_ROWS = ["... of which benchmarks run before v4.0 / new in v4.0"]
KNOWN_ROWS = ["... of which rows whose GPU type ran the same benchmark and scenario before"]


def _cases(rows: list[Quoted]) -> list[object]:
    return [
        pytest.param(document, row, id=f"{document}: {row.label}, {row.held_out}")
        for row in rows
        for document in row.documents
    ]


def _card_skip(card: str) -> int:
    """Where a card row's figures start: the serving card has a target column after the key."""
    return 2 if card == "serving.md" else 1


@pytest.mark.parametrize(("document", "quoted"), _cases(SINGLE_ROWS))
def test_single_rows_quote_the_card(document: str, quoted: Quoted) -> None:
    row = _row(document, quoted.label, quoted.held_out)
    figures = [_numbers(c)[0] for c in row[2:7]]
    card = _card_row(quoted.card, *quoted.key)
    assert figures == _card_figures(card, _card_skip(quoted.card)), f"{document}: {row}"


@pytest.mark.parametrize(("document", "quoted"), _cases(PAIRED_ROWS))
def test_serving_paired_rows_quote_the_card(document: str, quoted: Quoted) -> None:
    row = _row(document, quoted.label, quoted.held_out)
    tpot = _card_figures(_card_row("serving.md", *quoted.key, "tpot"), 2)
    ttft = _card_figures(_card_row("serving.md", *quoted.key, "ttft"), 2)
    assert _numbers(row[2]) == [tpot[0]]
    for column, cell in enumerate(row[3:7], start=1):
        assert _numbers(cell) == [tpot[column], ttft[column]], f"{document} column {column + 3}: {cell}"


def test_later_round_split_quotes_the_card() -> None:
    split = _row(ACCURACY, SPLIT_ROWS[0])
    earlier = _card_figures(_card_row("mlperf_inference.md", "round=v4.0,benchmarks=earlier"), 1)
    new = _card_figures(_card_row("mlperf_inference.md", "round=v4.0,benchmarks=new"), 1)
    assert _numbers(split[2]) == [earlier[0], new[0]]
    assert _numbers(split[3]) == [earlier[1], new[1]]
    assert _numbers(split[6]) == [earlier[4], new[4]]
    known = _row(ACCURACY, KNOWN_ROWS[0])
    row = _card_row("mlperf_inference.md", "round=v4.0,last result known")
    assert _numbers(known[2]) == [float(row[1])]
    assert _numbers(known[3]) == [float(row[2]), float(row[6])]  # the model, then the earlier result
    assert _numbers(known[6]) == [float(row[5])]


@pytest.mark.parametrize("document", BOTH)
def test_every_table_row_is_checked(document: str) -> None:
    """A row added to a table without a check here would go stale unnoticed."""
    checked = [(q.label, q.held_out) for q in SINGLE_ROWS + PAIRED_ROWS if document in q.documents]
    if document == ACCURACY:
        checked += [(label, "") for label in SPLIT_ROWS + KNOWN_ROWS]
    table = _accuracy_table(document)
    assert len(table) == len(checked), f"{document}: {len(table)} rows, {len(checked)} checked"
    for label, held_out in checked:
        _row(document, label, held_out)


@pytest.mark.parametrize("document", BOTH)
def test_the_group_counts_match_the_cards(document: str) -> None:
    """'(15 types)' and the like: the GPU types each card reports on its own."""

    def gpu_rows(card: str, target: str = "") -> int:
        keys = {
            _cells(line)[0]
            for line in (CARDS / card).read_text().splitlines()
            if re.match(r"\| gpu=[^,(|]+ \|", line) and target in line
        }
        return len(keys)

    expected = {
        ("LLM serving TPOT", "systems"): gpu_rows("serving.md", "| tpot |"),
        ("MLPerf inference throughput", "types"): gpu_rows("mlperf_inference.md"),
        ("MLPerf training time", "types"): gpu_rows("training_time.md"),
    }
    for (label, noun), count in expected.items():
        assert f"each GPU type in turn ({count} {noun})" == _row(document, label, "each GPU type")[1]


@pytest.mark.parametrize("document", BOTH)
def test_the_claims_under_the_table_hold(document: str) -> None:
    """'beats the plain roofline on every row', and which rows meet their target."""
    for row in _accuracy_table(document):
        if row[4]:
            model, roofline = _numbers(row[3]), _numbers(row[4])
            assert all(m < r for m, r in zip(model, roofline, strict=False)), row
    met = {
        (label, held_out): all(m <= _numbers(row[7])[0] for m in _numbers(row[3]))
        for label, held_out in [(q.label, q.held_out) for q in SINGLE_ROWS]
        for row in [_row(document, label, held_out)]
    }
    assert met == {
        ("LLM serving TPOT", "each GPU type"): False,
        ("LLM serving TTFT", "each GPU type"): False,
        ("MLPerf inference throughput", "each GPU type"): True,
        ("MLPerf inference throughput", "later round"): False,
        ("MLPerf training time", "each GPU type"): True,
        ("MLPerf training time", "later round"): True,
    }, "the text says which targets are met; the figures no longer agree"
    text = _flat(document)
    assert "The learned correction beats the plain roofline on every row." in text
    said = {
        README: "Training time and the pooled MLPerf GPU hold-out meet their targets; serving and the MLPerf "
        "later round do not",
        ACCURACY: "The training-time targets are met, and so is the pooled MLPerf GPU hold-out (not every "
        "GPU type on its own); the serving targets and the MLPerf later round are not.",
    }
    assert said[document] in text


def _figure(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"no match for {pattern!r}"
    return float(found.group(1))


def test_serving_consistency_floor_quotes_the_card() -> None:
    card = (CARDS / "serving.md").read_text()
    ttft, tpot = (_figure(rf"(\d+\.\d)% for {t} \(\d+ rows\)", card) for t in ("TTFT", "TPOT"))
    quoted = re.search(r"is already off by (\d+\.\d)% for TPOT and (\d+\.\d)% for TTFT", _flat(ACCURACY))
    assert quoted, f"{ACCURACY}: the concurrency-sweep consistency sentence is missing"
    assert (float(quoted.group(1)), float(quoted.group(2))) == (tpot, ttft)
    profiled = [_card_row("serving.md", "random rows", t)[5] for t in ("tpot", "ttft")]
    assert f"the model reaches {profiled[0]}% / {profiled[1]}%" in _flat(ACCURACY)


def test_last_result_yardstick_quotes_the_card() -> None:
    row = _card_row("mlperf_inference.md", "round=v4.0,last result known")
    sentence = (
        f"The {row[1]} rows that have one are off by {row[6]}% that way (GPT-J 58%, DLRM-v2 18%); "
        f"the model is off by {row[2]}% on the same rows."
    )
    assert sentence in _flat(ACCURACY)


def test_serving_median_figures_quote_the_card() -> None:
    card = " ".join((CARDS / "serving.md").read_text().split())
    pair = r"(\d+\.\d)% / (\d+\.\d)%"
    sentence = rf"leave-one-GPU-out TPOT/TTFT was {pair} and leave-one-architecture-out {pair}"
    in_card = re.search(sentence, card)
    in_docs = re.search(
        rf"the serving rows above read {pair} \(GPU types\) and {pair} \(models\)", _flat(ACCURACY)
    )
    assert in_card and in_docs, "the median figures' sentence is missing from the card or the accuracy page"
    assert in_docs.groups() == in_card.groups()


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

    text = _flat(ACCURACY)
    measured = f"runs {band('tpot', 'GPU and model measured together')} of the median for TPOT, " + (
        f"{band('ttft', 'GPU and model measured together')} for TTFT"
    )
    new = f"runs {band('tpot', 'new GPU or model')} and {band('ttft', 'new GPU or model')}"
    assert measured in text, measured
    assert new in text, new


def test_serving_per_group_figures_quote_the_card() -> None:
    """The 'each held-out group once' coverage and error are the card's last two columns."""
    order = [(kind, target) for kind in ("gpu", "model") for target in ("tpot", "ttft")]
    # The card's last two columns: MAPE and coverage with each held-out group once.
    last_two = {key: _card_row("serving.md", f"each {key[0]} in turn", key[1])[-2:] for key in order}
    pair = r"(\d+\.\d+) / (\d+\.\d+)"
    percents = r"(\d+\.\d+)% / (\d+\.\d+)%"
    found = re.search(
        rf"serving coverage is {pair} \(TPOT / TTFT, GPU types\) and {pair} \(models\), inside 0.75-0.85, "
        rf"where the error reads {percents} and {percents}",
        _flat(ACCURACY),
    )
    assert found, f"{ACCURACY}: the per-group coverage sentence is missing"
    quoted = [float(x) for x in found.groups()]
    card = [float(last_two[key][1]) for key in order] + [float(last_two[key][0]) for key in order]
    assert quoted == card
    assert all(0.75 <= c <= 0.85 for c in card[:4]), "the page says the per-group coverage is in band"


def test_per_gpu_figures_quote_the_cards() -> None:
    """The rounded per-GPU errors the accuracy page names, read off the cards' per-group rows."""
    mlperf = {gpu: float(_card_row("mlperf_inference.md", f"gpu={gpu}")[2]) for gpu in ("T4", "A2", "L4")}
    mlperf["RTX 4090"] = float(_card_row("mlperf_inference.md", "gpu=RTX-4090")[2])
    h100 = float(_card_row("serving.md", "gpu=h100_sxm", "tpot")[3])
    layout = float(_card_row("serving.md", "each gpu in turn (rows with known layout)", "tpot")[3])
    text = _flat(ACCURACY)
    assert max(mlperf["T4"], mlperf["A2"]) <= 15, "the page says T4 and A2 are within 15%"
    assert f"L4 ({_percent(mlperf['L4'])}) and RTX 4090 ({_percent(mlperf['RTX 4090'])})" in text
    assert f"(H100, the only Hopper: TPOT {_percent(h100)})" in text
    assert f"(TPOT {_percent(layout)} on rows with a stated layout)" in text
    everything = int(_card_row("serving.md", "each gpu in turn", "tpot")[2])
    stated = int(_card_row("serving.md", "each gpu in turn (rows with known layout)", "tpot")[2])
    assert f"{everything - stated} of the {everything} rows come from exports without worker counts" in text


def test_the_gains_named_quote_the_card() -> None:
    """What the L2 term and the inference-server ceiling bought, as the card's history records it."""
    card = " ".join((CARDS / "mlperf_inference.md").read_text().split())
    triton = re.search(r"Triton-served Server rows (\d+)% -> (\d+)%", card)
    l2 = re.findall(r"\(L4 (\d+)% -> (\d+)%, RTX 4090 (\d+)% -> (\d+)%\)", card)
    assert triton and l2, "the card no longer records the Triton ceiling's or the L2 term's gain"
    l4_before, l4_after, rtx_before, rtx_after = (int(x) for x in l2[-1])
    gains = sorted((l4_before - l4_after, rtx_before - rtx_after))
    text = _flat(ACCURACY)
    assert f"which took their error from {triton[1]}% to {triton[2]}%" in text
    assert f"gained {gains[0]}-{gains[1]} points when the roofline let L2 carry activations" in text


def test_seed_spread_quotes_the_card() -> None:
    card = " ".join((CARDS / "mlperf_inference.md").read_text().split())
    spread = r"(\d+\.\d)% \+/- (\d\.\d)"
    # The card's history lists each change in turn; the last seed-averaged figures are the shipped ones.
    in_card = re.findall(rf"seeds 0-7 to {spread} pooled .*? and v4.0 to {spread}", card)
    in_docs = re.search(rf"figures are {spread} \(GPU types\) and {spread} \(later round\)", _flat(ACCURACY))
    assert in_card and in_docs, "the seed spread is missing from the card or the accuracy page"
    assert in_docs.groups() == in_card[-1]


def _greenmatrix() -> str:
    beside = Path(sys.executable).with_name("greenmatrix")
    found = str(beside) if beside.exists() else shutil.which("greenmatrix")
    assert found, "the greenmatrix command is not installed"
    return found


def test_the_kubectl_get_row_is_what_the_engine_recommends() -> None:
    """The README's `kubectl get wp` row for the chat example in the demo's lab.

    Under the chat policy (region us-east-1) the lab offers H100 SXM and L4 nodes; `simulate` over
    those two GPUs plans the same workload with the same engine the operator calls.
    """
    args = ["-f", "examples/llama-8b-chat.yaml", "--policy", "examples/policy-chat-cost.yaml"]
    done = subprocess.run(
        [_greenmatrix(), "simulate", *args, "--gpus", "H100-SXM-80GB,L4", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rec = json.loads(done.stdout)["recommendation"]
    lines = _text(README).splitlines()
    cells = next(re.split(r"\s{2,}", line) for line in lines if line.startswith("llama-8b-chat   inference"))
    expected = [rec["gpu"], str(rec["gpusPerReplica"]), str(rec["replicas"]), rec["latency"]]
    assert cells[3:7] == expected
    assert cells[7] == f"{rec['usdPerMillionTokens']:g}"


REORGANISED = (ROOT / "greenmatrix" / "planning").is_dir() and (
    ROOT / "operator" / "greenmatrix_operator" / "control"
).is_dir()


def _layout_paths() -> list[str]:
    """The paths the README's Layout table names; a bare name is beside the row's first path."""
    lines = _text(README).split("## Layout", 1)[1].splitlines()
    paths = []
    for line in lines:
        if not line.startswith("| `"):
            continue
        names = re.findall(r"`([^`]+)`", _cells(line)[0])
        base = str(Path(names[0].rstrip("/")).parent)
        paths += [name if "/" in name else f"{base}/{name}" for name in names]
    return [str(Path(p)) for p in paths]


@pytest.mark.skipif(
    not REORGANISED, reason="the engine and operator reorganisation (issue 19) is not on this branch"
)
def test_the_layout_table_matches_the_tree() -> None:
    """Every path the Layout table and 'Where to look' name exists, and each engine and operator
    module or folder has a row: a newcomer finds things from the table."""
    listed = _layout_paths()
    missing = [p for p in listed if not (ROOT / p).exists()]
    where = re.search(r"Where to look: (.*?)\n\n", _text(README), re.S)
    assert where, "README: the 'Where to look' sentence is missing"
    missing += [p for p in re.findall(r"`([^`]+)`", where.group(1)) if not (ROOT / p).exists()]
    assert not missing, f"the README names paths that do not exist: {missing}"
    ignored = {"__pycache__", "py.typed", "__init__.py"}
    unlisted = [
        str(entry.relative_to(ROOT))
        for folder in ("greenmatrix", "operator/greenmatrix_operator")
        for entry in sorted((ROOT / folder).iterdir())
        if entry.name not in ignored and str(entry.relative_to(ROOT)) not in listed
    ]
    assert not unlisted, f"the README's Layout table has no row for {unlisted}"
