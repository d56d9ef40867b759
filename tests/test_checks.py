"""System checks."""

from __future__ import annotations

from django.test import override_settings

from boogie_tasks.checks import check_connection_reuse, check_settings


def test_reconnect_trap_is_noticed():
    with override_settings(CELERY_DB_REUSE_MAX=None):
        from tests.celery_app import app

        saved = app.conf.get("CELERY_DB_REUSE_MAX")
        try:
            app.conf["CELERY_DB_REUSE_MAX"] = None
            warnings = check_connection_reuse()
        finally:
            app.conf["CELERY_DB_REUSE_MAX"] = saved
    assert [w.id for w in warnings] == ["boogie_tasks.W001"]
    assert check_connection_reuse() == []  # the test settings set CELERY_DB_REUSE_MAX


def test_bad_settings_are_errors():
    with override_settings(BOOGIE_TASKS_PROGRESS_INTERVAL="often", BOOGIE_TASKS_ON_BROKER_ERROR=1):
        assert [e.id for e in check_settings()] == ["boogie_tasks.E001", "boogie_tasks.E002"]
    with override_settings(BOOGIE_TASKS_PUBLISH_MAX_RETRIES=-1):
        assert [e.id for e in check_settings()] == ["boogie_tasks.E001"]
    with override_settings(BOOGIE_TASKS_MAX_RESULT_SIZE=10, BOOGIE_TASKS_MAX_ERROR_LENGTH="9"):
        errors = check_settings()
        assert [e.id for e in errors] == ["boogie_tasks.E006", "boogie_tasks.E006"]
        assert "BOOGIE_TASKS_MAX_RESULT_SIZE must be a whole number" in errors[0].msg
    with override_settings(BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT="no"):
        errors = check_settings()
        assert [e.id for e in errors] == ["boogie_tasks.E005"]
        assert "must be True or False, not 'no'" in errors[0].msg
    assert check_settings() == []


def test_unique_without_partial_constraints_is_noticed(monkeypatch):
    from django.db import connection

    from boogie_tasks.checks import check_unique_support

    assert check_unique_support(databases=["default"]) == []
    monkeypatch.setattr(connection.features, "supports_partial_indexes", False)
    warnings = check_unique_support(databases=["default"])
    assert [w.id for w in warnings] == ["boogie_tasks.W002"]
    assert "tests.testapp.tasks.only_one" in warnings[0].msg


def test_stale_after_must_outlast_the_heartbeat():
    with override_settings(BOOGIE_TASKS_STALE_AFTER=10, BOOGIE_TASKS_HEARTBEAT_INTERVAL=10):
        assert [e.id for e in check_settings()] == ["boogie_tasks.E003"]
