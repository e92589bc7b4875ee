"""Who may label: /feedback behind the feedback token or the admin token when either is
set, open (and recorded as anonymous) when neither is; the label history is an admin read."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring.config import Settings, load_settings
from tests.helpers import AUTH, TOKEN, error_body

ROW = {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}
LABELLER = "labeller-token-for-tests"
AS_LABELLER = {"Authorization": f"Bearer {LABELLER}"}


def client_of(settings: Settings, *, api: str | None, feedback: str | None, **options: Any) -> Any:
    changed = dataclasses.replace(settings, api_token=api, feedback_token=feedback)
    if options:
        changed = changed.with_overrides(api=dataclasses.replace(changed.api, **options))
    return create_app(changed, {"TESTING": True}).test_client()


def row_id(client: Any) -> int:
    return int(client.post("/prediction", json={"data": [ROW]}).get_json()["row_ids"][0])


def label(client: Any, row: int, headers: dict[str, str] | None = None) -> Any:
    return client.post("/feedback", json={"row_id": row, "label": 1}, headers=headers or {})


def history(client: Any, row: int, headers: dict[str, str] | None = None) -> Any:
    return client.get(f"/feedback/{row}/history", headers=headers or {})


@pytest.mark.parametrize(
    ("api", "feedback", "headers", "status", "source"),
    [
        (None, None, {}, 200, "anonymous"),  # no token at all: open, as documented
        (TOKEN, None, {}, 401, None),
        (TOKEN, None, AS_LABELLER, 401, None),
        (TOKEN, None, AUTH, 200, "admin_token"),
        (None, LABELLER, {}, 401, None),
        (None, LABELLER, AS_LABELLER, 200, "feedback_token"),
        (TOKEN, LABELLER, AS_LABELLER, 200, "feedback_token"),
        (TOKEN, LABELLER, AUTH, 200, "admin_token"),
        (TOKEN, LABELLER, {"Authorization": "Bearer wrong"}, 401, None),
        (TOKEN, LABELLER, {"Authorization": f"Basic {LABELLER}"}, 401, None),
    ],
    ids=[
        "no-token-open",
        "admin-token-set-none-sent",
        "admin-token-set-other-sent",
        "admin-token-set-sent",
        "feedback-token-set-none-sent",
        "feedback-token-set-sent",
        "both-set-feedback-sent",
        "both-set-admin-sent",
        "both-set-wrong-sent",
        "both-set-basic-scheme",
    ],
)
def test_feedback_needs_a_token_when_one_is_set(
    settings: Settings,
    deployed: dict[str, Any],
    api: str | None,
    feedback: str | None,
    headers: dict[str, str],
    status: int,
    source: str | None,
) -> None:
    client = client_of(settings, api=api, feedback=feedback)
    row = row_id(client)
    response = label(client, row, headers)
    if status == 401:
        error_body(response, 401, "feedback needs 'Authorization: Bearer <token>'")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="monitoring"'
        assert LABELLER not in response.get_data(as_text=True)
    else:
        assert response.status_code == 200 and response.get_json()["labelled_rows"] == 1
    admin = client_of(settings, api=TOKEN, feedback=None)
    trail = history(admin, row, AUTH).get_json()
    if source is None:  # refused: nothing stored
        assert (trail["captured"], trail["label"], trail["events"]) == (True, None, [])
    else:
        assert [e["source"] for e in trail["events"]] == [source] and trail["label"] == 1


def test_the_label_history_lists_every_label_and_needs_the_admin_token(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    client = client_of(settings, api=TOKEN, feedback=LABELLER)
    row = row_id(client)
    for value, headers in ((1, AS_LABELLER), (0, AUTH), (0, AS_LABELLER)):
        response = client.post("/feedback", json={"row_id": row, "label": value}, headers=headers)
        assert response.status_code == 200
    body = history(client, row, AUTH).get_json()
    events = [{k: e[k] for k in ("label", "previous_label", "source")} for e in body["events"]]
    assert events == [
        {"label": 1, "previous_label": None, "source": "feedback_token"},
        {"label": 0, "previous_label": 1, "source": "admin_token"},
        {"label": 0, "previous_label": 0, "source": "feedback_token"},
    ]
    assert (body["row_id"], body["captured"], body["label"]) == (row, True, 0)
    times = [e["labelled_at"] for e in body["events"]]
    assert times == sorted(times)
    error_body(history(client, row, AS_LABELLER), 401, "admin endpoints need")
    error_body(history(client, row), 401, "admin endpoints need")
    error_body(history(client, row + 10**6, AUTH), 404, "has no capture and no label history")
    error_body(history(client, 2**64, AUTH), 404, "")  # beyond any row id: no such URL
    open_service = client_of(settings, api=None, feedback=None)
    error_body(history(open_service, row), 403, "admin endpoints are disabled")
    loopback = client_of(settings, api=None, feedback=None, allow_unauthenticated_admin=True)
    assert history(loopback, row).get_json()["label"] == 0


def test_the_feedback_token_comes_from_the_environment_and_is_never_shown(
    project: Path,
) -> None:
    env = {"MONITORING_FEEDBACK_TOKEN": LABELLER, "MONITORING_API_TOKEN": TOKEN}
    settings = load_settings(project / "config.json", env=env)
    assert (settings.feedback_token, settings.api_token) == (LABELLER, TOKEN)
    assert LABELLER not in repr(settings)
    copy = settings.with_overrides(capture={"sample_rate": 0.5})
    assert copy.feedback_token == LABELLER
    assert load_settings(project / "config.json", env={}).feedback_token is None
    empty = load_settings(project / "config.json", env={"MONITORING_FEEDBACK_TOKEN": ""})
    assert empty.feedback_token is None
