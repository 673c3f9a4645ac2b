from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sessionscope.models import Event, Page, Session, SessionStatus, SessionUpdate


def test_session_round_trips_json_and_keeps_unknown_fields() -> None:
    payload = {
        "id": "ses_1",
        "title": "t",
        "status": "waiting",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "from_a_newer_server": {"x": 1},
    }
    session = Session.model_validate(payload)
    assert session.status is SessionStatus.WAITING
    again = Session.model_validate_json(session.model_dump_json())
    assert again == session
    assert again.model_extra == {"from_a_newer_server": {"x": 1}}


def test_page_of_events_parses() -> None:
    page = Page[Event].model_validate(
        {
            "data": [{"id": "e1", "session_id": "s", "sequence": 1, "type": "some.future.type"}],
            "next_cursor": None,
        }
    )
    assert page.data[0].type == "some.future.type"
    assert page.data[0].created_at.tzinfo is not None or page.data[0].created_at <= datetime.now(
        UTC
    )


@pytest.mark.parametrize(
    "variables",
    [
        {"lower_case": "x"},
        {f"K{i}": "v" for i in range(21)},
        {"BIG": "x" * 5000},
    ],
)
def test_context_variable_rules_reject(variables: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SessionUpdate(context_variables=variables)


def test_context_variable_rules_accept() -> None:
    assert SessionUpdate(context_variables={"USER_PLAN": "pro", "A1_B2": "x"}).context_variables
