"""Deterministic synthetic Gong data for the simulator: users, calls, extensive calls, transcripts.

Everything derives from a seed: the same seed gives the same ids, names and times, so
tests can compare what a client fetched with :meth:`GongData.select`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia", "Donald", "Frances", "Linus")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Perlman", "Knuth")
TOPICS = ("Pricing", "Onboarding", "Security", "Integrations", "Renewal", "Roadmap", "Support")
SENTENCES = (
    "Thanks for joining today.",
    "Could you walk me through your current process?",
    "We sync the data into Snowflake every hour.",
    "What does the renewal timeline look like?",
    "Security review is the main blocker on our side.",
    "Let me share the pricing sheet after the call.",
    "The integration took about two weeks last time.",
    "Who else should be part of the evaluation?",
)

#: stream name -> the JSON key that holds its records in a response.
STREAM_KEYS = {
    "users": "users",
    "calls": "calls",
    "calls_extensive": "calls",
    "transcripts": "callTranscripts",
}


def iso(moment: datetime) -> str:
    """Return ``moment`` as Gong writes times: ISO-8601 with an explicit UTC offset."""
    return moment.astimezone(timezone.utc).isoformat()


@dataclass
class GongData:
    """Synthetic users and calls (with started times spread over a range) from a seed.

    :param seed: the seed of every generated value.
    :param users: how many users.
    :param calls: how many calls.
    :param start: the earliest call start (UTC).
    :param days: calls start uniformly within ``days`` after ``start``.
    :param transcript_ratio: share of calls that have a transcript.
    """

    seed: int = 0
    users: int = 25
    calls: int = 500
    start: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc)
    days: float = 30.0
    transcript_ratio: float = 1.0
    user_records: list[dict[str, Any]] = field(init=False, repr=False)
    call_records: list[dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.regenerate()

    def regenerate(self) -> None:
        """Rebuild every record from the seed, dropping changes made with :meth:`update`."""
        rng = random.Random(self.seed)
        self.user_records = [self._user(rng, index) for index in range(self.users)]
        span = timedelta(days=self.days)
        self.call_records = [self._call(rng, index, span) for index in range(self.calls)]
        self._starts = [datetime.fromisoformat(call["started"]) for call in self.call_records]
        self._by_id = {record["id"]: record for record in self.user_records + self.call_records}

    def _user(self, rng: random.Random, index: int) -> dict[str, Any]:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        created = self.start - timedelta(days=rng.randint(30, 900))
        return {
            "id": f"1{self.seed % 10_000:04d}{index:09d}",
            "emailAddress": f"{first}.{last}.{index}@example.com".lower(),
            "created": iso(created),
            "active": rng.random() > 0.1,
            "firstName": first,
            "lastName": last,
            "title": rng.choice(("AE", "SDR", "CSM", "Sales Manager")),
            "phoneNumber": f"+1-555-{rng.randint(0, 9999):04d}",
            "managerId": None,
            "spokenLanguages": [{"language": "en-US", "primary": True}],
        }

    def _call(self, rng: random.Random, index: int, span: timedelta) -> dict[str, Any]:
        started = self.start + span * ((index + rng.random()) / max(self.calls, 1))
        started = started.replace(microsecond=0)
        call_id = f"2{self.seed % 10_000:04d}{index:09d}"
        return {
            "id": call_id,
            "url": f"https://app.gong.io/call?id={call_id}",
            "title": f"{rng.choice(TOPICS)} call #{index}",
            "scheduled": iso(started - timedelta(minutes=rng.randint(0, 10))),
            "started": iso(started),
            "duration": rng.randint(60, 3600),
            "primaryUserId": self.user_records[index % len(self.user_records)]["id"]
            if self.user_records
            else None,
            "direction": rng.choice(("Inbound", "Outbound", "Conference")),
            "system": rng.choice(("Zoom", "Teams", "Meet")),
            "scope": rng.choice(("External", "Internal")),
            "media": "Video",
            "language": "eng",
            "workspaceId": f"3{self.seed % 10_000:04d}000000001",
            "isPrivate": False,
            "hasTranscript": rng.random() < self.transcript_ratio,
        }

    def update(self, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` to the user or call ``record_id`` and return the record.

        :param record_id: a user or call id.
        :param changes: fields to set (``id`` and ``started`` cannot change).
        :raises KeyError: when no record has that id.
        :raises ValueError: when ``changes`` touches ``id`` or ``started``.
        """
        fixed = {"id", "started"} & set(changes)
        if fixed:
            raise ValueError(f"Fields {sorted(fixed)} of a record cannot be changed in the simulator.")
        record = self._by_id[record_id]
        record.update(changes)
        return record

    def calls_between(
        self,
        from_datetime: datetime | None,
        to_datetime: datetime | None,
        call_ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the calls with ``from <= started < to`` (either bound optional), restricted to ``call_ids``.

        :param from_datetime: inclusive lower bound of ``started``.
        :param to_datetime: exclusive upper bound of ``started``.
        :param call_ids: only these calls, when given.
        """
        low = 0 if from_datetime is None else bisect.bisect_left(self._starts, from_datetime)
        high = len(self._starts) if to_datetime is None else bisect.bisect_left(self._starts, to_datetime)
        calls = self.call_records[low:high]
        if call_ids is not None:
            wanted = set(call_ids)
            calls = [call for call in calls if call["id"] in wanted]
        return calls

    def select(
        self,
        stream: str,
        from_datetime: datetime | None = None,
        to_datetime: datetime | None = None,
        call_ids: Iterable[str] | None = None,
        content_selector: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return every record of ``stream`` matching the filter, in the order pages serve them.

        :param stream: ``users``, ``calls``, ``calls_extensive`` or ``transcripts``.
        :param from_datetime: inclusive lower bound of a call's start.
        :param to_datetime: exclusive upper bound of a call's start.
        :param call_ids: only these calls.
        :param content_selector: the extensive endpoint's ``contentSelector``.
        :raises ValueError: for an unknown stream.
        """
        if stream == "users":
            return list(self.user_records)
        calls = self.calls_between(from_datetime, to_datetime, call_ids)
        if stream == "calls":
            return [self._public(call) for call in calls]
        if stream == "calls_extensive":
            return [self._extensive(call, content_selector) for call in calls]
        if stream == "transcripts":
            return [self._transcript(call) for call in calls if call["hasTranscript"]]
        raise ValueError(f"Unknown stream {stream!r}; expected one of {sorted(STREAM_KEYS)}.")

    @staticmethod
    def _public(call: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in call.items() if key != "hasTranscript"}

    def _extensive(self, call: dict[str, Any], content_selector: dict[str, Any] | None) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:parties:{call['id']}")
        parties = [
            {"id": f"{call['id']}{n}", "speakerId": f"{call['id']}{n}", "affiliation": affiliation}
            for n, affiliation in enumerate(("Internal", "External", "External")[: rng.randint(2, 3)])
        ]
        record: dict[str, Any] = {"metaData": self._public(call), "parties": parties}
        if content_selector:
            record["content"] = {"topics": [{"name": rng.choice(TOPICS), "duration": rng.randint(10, 600)}]}
        return record

    def _transcript(self, call: dict[str, Any]) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:transcript:{call['id']}")
        clock, monologues = 0, []
        for turn in range(rng.randint(2, 5)):
            sentences = []
            for _ in range(rng.randint(1, 3)):
                length = rng.randint(2_000, 9_000)
                sentences.append({"start": clock, "end": clock + length, "text": rng.choice(SENTENCES)})
                clock += length
            monologues.append(
                {"speakerId": f"{call['id']}{turn % 2}", "topic": rng.choice(TOPICS), "sentences": sentences}
            )
        return {"callId": call["id"], "transcript": monologues}
