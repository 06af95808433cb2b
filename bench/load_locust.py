"""The locustfile bench/load.py runs (headless, in its own process, loopback only).

Environment: LOAD_DATA (the JSON the seeding wrote: API key, probes, withdrawers, sessions),
LOAD_RESULTS (where every request is written at the end: name, end time, ms, ok),
LOAD_GATES / LOAD_WITHDRAWERS / LOAD_PARENTS (users of each kind), LOAD_COHORT (which parents
withdraw), LOAD_GATE_RATE (identifications per second each gate sends; 0: as fast as it is
answered), LOAD_WITHDRAW_WAIT ("min,max" seconds a withdrawing client waits before its next
parent; "0": none), LOAD_EVENING_WAIT ("min,max" seconds a parent waits between two openings),
LOAD_QUIT_AFTER_WITHDRAWALS (1: stop the run when every parent has withdrawn).

Gates send at their rate (Locust's constant throughput: a gate whose answer is late sends the
next one at once, so a slow stack shows as a rate below the target, never as a hidden queue) or,
at rate 0, as fast as they are answered (the stack's capacity). Each withdrawing client takes the
next parent of the cohort, waits as that parent reads the page, and withdraws; evening parents
open their child's page, wait, and open it again.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import deque

import gevent
from locust import FastHttpUser, between, constant, constant_throughput, events, task
from locust.exception import StopUser

DATA = json.loads(open(os.environ["LOAD_DATA"]).read())
RESULTS: list[tuple[str, float, float, bool]] = []
PENDING = deque(DATA["withdrawers"].get(os.environ.get("LOAD_COHORT", ""), []))
STATE = {"withdrawing": 0, "sessions": 0}
WAIT = [float(x) for x in os.environ.get("LOAD_EVENING_WAIT", "2,8").split(",")]
GATE_RATE = float(os.environ.get("LOAD_GATE_RATE", "0"))
WITHDRAW_WAIT = [float(x) for x in os.environ.get("LOAD_WITHDRAW_WAIT", "0").split(",")]


def _steady(wait: list[float]) -> None:
    """Start at a random point of the user's cycle, as in a steady state: people who wait
    between requests do not all send their first at the instant the run starts (that burst
    would be the run's slowest seconds, and no school's)."""
    if len(wait) == 2 and wait[1] > 0:
        gevent.sleep(random.uniform(0, wait[1]))


@events.request.add_listener
def _recorded(name, response_time, exception, **kwargs) -> None:
    RESULTS.append((name, time.time(), response_time, exception is None))


@events.quitting.add_listener
def _written(environment, **kwargs) -> None:
    with open(os.environ["LOAD_RESULTS"], "w") as fh:
        json.dump(RESULTS, fh)


class Gate(FastHttpUser):
    """A gate camera that computes the embedding and asks who it is."""

    fixed_count = int(os.environ.get("LOAD_GATES", "0"))
    wait_time = constant_throughput(GATE_RATE) if GATE_RATE else constant(0)

    def on_start(self) -> None:
        self.device = f"Gate {random.randrange(1000)}"
        self.rng = random.Random()
        if GATE_RATE:
            _steady([0, 1 / GATE_RATE])

    @task
    def identify(self) -> None:
        child_id, vector = self.rng.choice(DATA["probes"])
        probe = [x + self.rng.gauss(0, DATA["noise"]) for x in vector]
        with self.client.post(
            f"{DATA.get('gate_url', '')}/api/v1/identify/",
            json={"purpose": DATA["purpose"], "device": self.device, "embedding": probe},
            headers={"Authorization": f"Api-Key {DATA['api_key']}"},
            name="identify",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif (response.json().get("match") or {}).get("student_id") != child_id:
                response.failure("not recognised")


class Withdrawer(FastHttpUser):
    """Parents on their phones: each takes the next parent of the cohort and withdraws."""

    fixed_count = int(os.environ.get("LOAD_WITHDRAWERS", "0"))
    wait_time = between(*WITHDRAW_WAIT) if len(WITHDRAW_WAIT) == 2 else constant(WITHDRAW_WAIT[0])

    def on_start(self) -> None:
        STATE["withdrawing"] += 1
        _steady(WITHDRAW_WAIT)

    @task
    def withdraw(self) -> None:
        if not PENDING:
            STATE["withdrawing"] -= 1
            if STATE["withdrawing"] == 0 and os.environ.get("LOAD_QUIT_AFTER_WITHDRAWALS") == "1":
                self.environment.runner.quit()
            raise StopUser()
        child_id, token = PENDING.popleft()
        with self.client.post(
            f"/api/v1/children/{child_id}/consents/",
            json={"purpose": DATA["purpose"], "decision": "withdraw"},
            headers={"Authorization": f"Bearer {token}"},
            name="withdraw",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}")
            elif not response.json().get("erasure_id"):
                response.failure("no erasure opened")


class Parent(FastHttpUser):
    """A parent in the evening: opens their child's page, reads, opens it again later."""

    fixed_count = int(os.environ.get("LOAD_PARENTS", "0"))
    wait_time = between(*WAIT)

    def on_start(self) -> None:
        sessions = DATA["sessions"]
        self.child_id, self.session = sessions[STATE["sessions"] % len(sessions)]
        STATE["sessions"] += 1
        _steady(WAIT)

    @task
    def child_page(self) -> None:
        with self.client.get(
            f"/children/{self.child_id}/",
            headers={"Cookie": f"{DATA['session_cookie']}={self.session}"},
            name="child page",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
