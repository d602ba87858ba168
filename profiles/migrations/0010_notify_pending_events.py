"""One NOTIFY per statement that queues events, while a worker is idle (profiles.processing.
wakeup): a statement-level trigger on profiles_pendingevent. It notifies only when it cannot
take the idle lock (two-key advisory lock 1398035009, 1) in shared mode, i.e. while an idle
worker holds it; otherwise it holds the lock shared until its transaction ends, so that a worker
going idle sees its events when it looks once more under the lock."""

from django.db import migrations

CREATE = """
CREATE FUNCTION strata_pending_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(1398035009, 1) THEN
        PERFORM pg_notify('strata_pending_events', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER strata_pending_notify AFTER INSERT ON profiles_pendingevent
    FOR EACH STATEMENT EXECUTE FUNCTION strata_pending_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS strata_pending_notify ON profiles_pendingevent;
DROP FUNCTION IF EXISTS strata_pending_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("profiles", "0009_correct_calculated_attributes_schedule")]

    operations = [migrations.RunSQL(CREATE, DROP)]
