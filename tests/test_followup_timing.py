"""A wrong receipt costs the same time as a right one, up to the mailbox lookup.

Measured in the app itself, at the deployment's real Argon2id cost, on the
real request path: from the moment the request reaches the app to the moment
the lookup (`MailboxStore.find`) has answered, as the CPU time of the thread
that serves it (`time.thread_time`): the work the server does, which is what
a receipt could change. Wall time on a shared 2-core machine swings by half
with the other processes' load (it is printed too), and that noise owes
nothing to the receipt. Right receipts (a mailbox with a report in it) and
wrong ones (well formed, no mailbox) alternate in a random order, so that
whatever else the machine does weighs on both alike.

**The check, stated.** With n measurements of each, the ratio of the two
medians (right / wrong) is bootstrapped (5,000 resamples of each group, with
replacement); the 99 % percentile interval of that ratio must lie within
[1 - MARGIN, 1 + MARGIN], MARGIN = 0.15. That is an equivalence test: it
passes only when the data show the two costs to be within 15 % of each other
at the median, not merely when they fail to show a difference. On this
2-core machine under the other helpers' load (a load average of 13), the
interval came out within a few per cent (Argon2id's 0.3 s of CPU dominates;
the lookup is a fraction of a millisecond), so the margin leaves room for a
busy machine without hiding an early exit, which puts the ratio near 0.

**The control** shows that the check can fail: the same measurement with
the derivation skipped for receipts that have no mailbox (the leak this test
exists to catch) is refused by it.

Pass/fail is the equivalence alone; the figures are printed for the reader.
"""

from __future__ import annotations

import random
import statistics
import time

import pytest
from followup_support import csrf_of, receipt_of_answer
from helpers import Deployment, form_tokens, make_settings, valid_report

from intake.crypto import receipt as rc
from intake.storage.mailboxes import MailboxStore
from intake.web import receipts
from intake.web.app import build_app

pytestmark = pytest.mark.slow

MEASUREMENTS = 40
CONTROL_MEASUREMENTS = 10
RESAMPLES = 5000
MARGIN = 0.15


def median_ratio_interval(right: list[float], wrong: list[float], seed: int = 7,
                          confidence: float = 0.99) -> tuple[float, float]:
    """Bootstrap percentile interval of median(right) / median(wrong)."""
    draw = random.Random(seed)
    ratios = sorted(
        statistics.median(draw.choices(right, k=len(right)))
        / statistics.median(draw.choices(wrong, k=len(wrong)))
        for _ in range(RESAMPLES)
    )
    cut = int(RESAMPLES * (1 - confidence) / 2)
    return ratios[cut], ratios[-cut - 1]


def equivalent(right: list[float], wrong: list[float]) -> tuple[bool, tuple[float, float]]:
    low, high = median_ratio_interval(right, wrong)
    return (low >= 1 - MARGIN and high <= 1 + MARGIN), (low, high)


@pytest.fixture
def app(tmp_path):
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    settings = make_settings(tmp_path / "var", deployment, full_cost_receipts=True)
    return build_app(settings, {"TESTING": True})


def time_to_lookup(app, monkeypatch) -> dict[str, float]:
    """Record, per request, the thread's CPU seconds (and the wall seconds) from its
    arrival to the lookup's answer."""
    record: dict[str, float] = {}
    original = MailboxStore.find

    def find(self, keys):
        found = original(self, keys)
        record["lookup"] = time.thread_time() - record["start"]
        record["wall"] = time.perf_counter() - record["wall_start"]
        return found

    def start() -> None:
        record["start"], record["wall_start"] = time.thread_time(), time.perf_counter()

    monkeypatch.setattr(MailboxStore, "find", find)
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    return record


def measure(client, record, right: str, n: int) -> tuple[list[float], list[float]]:
    token = csrf_of(client.get("/en/follow-up").get_data(as_text=True))
    order = ["right"] * n + ["wrong"] * n
    random.Random(11).shuffle(order)
    times: dict[str, list[float]] = {"right": [], "wrong": []}
    walls: dict[str, list[float]] = {"right": [], "wrong": []}
    for kind in order:
        receipt = right if kind == "right" else rc.new_receipt()
        answer = client.post("/en/follow-up", data={"csrf_token": token, "receipt": receipt})
        assert answer.status_code == 200
        assert ('id="statuses"' in answer.get_data(as_text=True)) == (kind == "right")
        times[kind].append(record.pop("lookup"))
        walls[kind].append(record.pop("wall"))
    record["walls"] = walls  # type: ignore[assignment]
    return times["right"], times["wrong"]


def a_report(client) -> str:
    tokens = form_tokens(client.get("/en/report").get_data(as_text=True))
    answer = client.post("/en/report", data={**tokens, **valid_report()},
                         content_type="multipart/form-data")
    return receipt_of_answer(answer.get_data(as_text=True))


def test_a_wrong_receipt_costs_the_same_time_up_to_the_lookup_as_a_right_one(
    app, monkeypatch, capsys
):
    client = app.test_client()
    right = a_report(client)
    record = time_to_lookup(app, monkeypatch)
    right_times, wrong_times = measure(client, record, right, MEASUREMENTS)
    ok, (low, high) = equivalent(right_times, wrong_times)
    walls = record["walls"]
    with capsys.disabled():
        print(f"\nCPU time to the lookup, {MEASUREMENTS} each: right median "
              f"{statistics.median(right_times) * 1000:.1f} ms, wrong median "
              f"{statistics.median(wrong_times) * 1000:.1f} ms; 99 % interval of the ratio "
              f"{low:.3f}-{high:.3f} (equivalent within ±{MARGIN:.0%}: {ok}); wall medians "
              f"{statistics.median(walls['right']) * 1000:.0f} and "
              f"{statistics.median(walls['wrong']) * 1000:.0f} ms")
    assert ok, (low, high)


def test_control_an_early_exit_for_unknown_receipts_is_caught_by_the_same_check(
    app, monkeypatch
):
    client = app.test_client()
    right = a_report(client)
    derivation = app.extensions["intake"].derivation
    right_keys = rc.derive_keys(right, derivation)

    def leaky(receipt: str) -> rc.ReceiptKeys:
        # A server that could tell a receipt has no mailbox before deriving.
        return right_keys if receipt == right else rc.ReceiptKeys("0" * 64, bytes(32))

    monkeypatch.setattr(receipts, "keys_for_follow_up", leaky)
    monkeypatch.setattr("intake.web.followup.keys_for_follow_up", leaky)
    record = time_to_lookup(app, monkeypatch)
    right_times, wrong_times = measure(client, record, right, CONTROL_MEASUREMENTS)
    ok, interval = equivalent(right_times, wrong_times)
    assert not ok, interval
