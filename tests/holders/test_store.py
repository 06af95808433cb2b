"""The reference holder's SQLite store, seen through a dedicated holder process each."""

from __future__ import annotations

import pytest

from .harness import HolderProcess, embedding, new_id, post_event, raw_request, running_holder


def test_pagination_returns_every_subject_exactly_once(tmp_path):
    with running_holder(tmp_path) as proc:
        client = proc.client()
        with_templates = [new_id() for _ in range(200)]
        events_only = [new_id() for _ in range(50)]
        for subject in with_templates:
            client.put_template(subject, new_id(), embedding(), "m")
        for subject in events_only:
            post_event(proc, subject, "gate", "entry", 0.4)

        seen: list[str] = []
        pages: list[int] = []
        cursor = None
        while True:
            page, cursor = client.list_subjects(cursor, limit=100)
            pages.append(len(page))
            seen.extend(page)
            if cursor is None:
                break
            assert len(pages) < 10
        assert pages == [100, 100, 50]
        assert seen == sorted(seen)
        assert len(seen) == len(set(seen)) == 250
        assert set(seen) == set(with_templates) | set(events_only)

        # Default page size is 100; limits above 1000 are clamped, not refused.
        status, body = raw_request(proc, "GET", "/subjects")
        assert (status, len(body["subjects"])) == (200, 100)
        assert body["next_cursor"] == body["subjects"][-1]
        status, body = raw_request(proc, "GET", "/subjects?limit=5000")
        assert (status, len(body["subjects"]), body["next_cursor"]) == (200, 250, None)
        assert list(client.iter_subjects(limit=64)) == seen


def test_data_survives_a_restart(tmp_path):
    holder = HolderProcess(tmp_path / "keep.sqlite3", tmp_path / "keep.log").start()
    try:
        client = holder.client()
        kept, erased, template = new_id(), new_id(), new_id()
        client.put_template(kept, template, embedding(), "m")
        post_event(holder, kept, "gate", "entry", 0.3)
        client.put_template(erased, new_id(), embedding(), "m")
        assert client.delete_subject(erased) == 1
    finally:
        holder.stop()
    assert holder.proc.returncode == 0  # SIGTERM is a clean shutdown

    holder.start()
    try:
        client = holder.client()
        held = client.get_subject(kept)
        assert [t["template"] for t in held["templates"]] == [template]
        assert held["templates"][0]["embedding"] == pytest.approx(embedding())
        assert len(held["events"]) == 1
        assert client.get_subject(erased) is None
    finally:
        holder.stop()
