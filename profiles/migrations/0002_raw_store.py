"""The raw store: partitioned by month of received_at, then by account (profiles.collection.partitions)."""

from django.db import migrations

CREATE = """
CREATE TABLE profiles_rawevent (
    id bigserial NOT NULL,
    account_id bigint NOT NULL,
    stream varchar(100) NOT NULL,
    message_id varchar(200) NOT NULL,
    type varchar(32) NOT NULL DEFAULT '',
    event varchar(200) NOT NULL DEFAULT '',
    user_id varchar(300) NOT NULL DEFAULT '',
    anonymous_id varchar(300) NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL,
    sent_at timestamptz NULL,
    event_at timestamptz NOT NULL,
    source varchar(32) NOT NULL,
    write_key_id bigint NULL,
    message jsonb NOT NULL,
    warnings jsonb NULL,
    PRIMARY KEY (id, received_at, account_id)
) PARTITION BY RANGE (received_at);
CREATE INDEX profiles_rawevent_stream_id ON profiles_rawevent (account_id, stream, id DESC);
CREATE INDEX profiles_rawevent_id ON profiles_rawevent (id);
CREATE TABLE profiles_rawevent_default PARTITION OF profiles_rawevent DEFAULT;
"""

DROP = "DROP TABLE IF EXISTS profiles_rawevent CASCADE;"


def create_partitions(apps, schema_editor):
    from profiles.collection.partitions import ensure_partitions

    ensure_partitions(account_ids=list(
        apps.get_model("cdp_site", "Account").objects.values_list("pk", flat=True)
    ))


class Migration(migrations.Migration):
    dependencies = [("profiles", "0001_initial")]

    operations = [
        migrations.RunSQL(CREATE, DROP),
        migrations.RunPython(create_partitions, migrations.RunPython.noop),
    ]
