"""Bad input never gets a 500 or an HTML page from the API; errors leak nothing."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient


@pytest.mark.parametrize("url", ["/api/v1/nope/", "/api/v1/children/1/", "/api/v1/exports/x/"])
def test_unknown_api_paths_answer_json_404(db, url):
    r = APIClient().get(url)
    assert r.status_code in (401, 404)
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["error"]


def test_unknown_page_is_a_friendly_404(db, client):
    r = client.get("/no/such/page/")
    assert r.status_code == 404
    assert b"Not found" in r.content


def test_malformed_json_is_400(api_a, child_a):
    r = api_a.post(
        f"/api/v1/children/{child_a.pk}/consents/",
        data="{not json",
        content_type="application/json",
    )
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_request"


def test_wrong_method_is_405_json(api_a):
    r = api_a.delete("/api/v1/children/")
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"


def test_commands_pick_the_only_school_or_ask(db, school, tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("external_id,name\nA1,Someone\n")
    call_command("import_roster", str(path))
    assert "1 students created" in capsys.readouterr().out
    from tests.factories import SchoolFactory

    SchoolFactory(slug="second")
    with pytest.raises(CommandError, match="--school"):
        call_command("import_roster", str(path))
