"""The admins' settings page: the thresholds shown, changed, refused beside their field."""

from __future__ import annotations

import re

from cape.workspace.service import get_workspace_settings
from tests.fixtures.web import sign_in


def test_an_admin_changes_the_waiting_thresholds(client, db, carol_admin):
    headers = sign_in(client, carol_admin)
    page = client.get("/admin/settings").text
    assert '<a href="/admin/settings" aria-current="page">Settings</a>' in page  # in the admin navigation
    assert 'name="waiting_warn_minutes" value="60"' in page and 'name="waiting_late_minutes" value="240"' in page
    assert "Now: amber after 1 hr, red after 4 hr." in page

    response = client.post("/admin/settings", data={"waiting_warn_minutes": "45", "waiting_late_minutes": "1500"},
                           headers=headers)  # fmt: skip
    assert response.status_code == 200 and 'role="status"' in response.text  # back on the page: saved
    assert "Now: amber after 45 min, red after 1 day 1 hr." in response.text
    db.expire_all()
    assert (get_workspace_settings(db).waiting_warn_minutes, get_workspace_settings(db).waiting_late_minutes) == (
        45, 1500
    )  # fmt: skip


def test_a_refused_value_is_explained_beside_its_field_in_the_admins_language(client, db, carol_admin):
    carol_admin.user.language = "fr"
    db.commit()
    headers = sign_in(client, carol_admin)
    response = client.post("/admin/settings", data={"waiting_warn_minutes": "120", "waiting_late_minutes": "90"},
                           headers=headers)  # fmt: skip
    assert response.status_code == 422
    page = response.text
    # What was typed is kept; the error is on the late field, in French.
    assert 'name="waiting_warn_minutes" value="120"' in page
    late = re.search(r'name="waiting_late_minutes" value="90"[^>]*aria-invalid="true" aria-describedby="(\S+)"', page)
    assert late, page
    error = re.search(rf'id="{late.group(1)}">([^<]+)<', page).group(1)
    assert "avertissement" in error

    for typed in ("soon", "²", "-5", "1" * 40):
        response = client.post("/admin/settings", data={"waiting_warn_minutes": typed, "waiting_late_minutes": "90"},
                               headers=headers)  # fmt: skip
        assert response.status_code == 422
        assert f'name="waiting_warn_minutes" value="{typed}"' in response.text
    assert "43\u202f200" in response.text or "43 200" in response.text  # the limit, written the French way
    db.expire_all()
    assert get_workspace_settings(db).waiting_warn_minutes == 60  # nothing saved


def test_agents_and_supervisors_have_no_settings_link(client, alice_agent):
    sign_in(client, alice_agent)
    assert 'href="/admin/settings"' not in client.get("/heroes").text
