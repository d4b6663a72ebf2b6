from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ContactMessage',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject', fields.CharField(max_length=200)),
                ('email', fields.CharField(max_length=254)),
                ('message', fields.TextField(unique=False)),
                ('client_ip', fields.CharField(max_length=45)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'contact_messages', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A message sent through the contact form.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(max_length=32)),
                ('username_key', fields.CharField(unique=True, max_length=32)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('call_id', fields.CharField(null=True, unique=True, max_length=8)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An account. ``call_id`` is the permanent Call ID (assigned by signaling, unique, never reused).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='api_key', on_delete=OnDelete.CASCADE)),
                ('lookup_hash', fields.CharField(unique=True, max_length=64)),
                ('encrypted_key', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_keys', 'app': 'models', 'pk_attr': 'id', 'table_description': "A user's one API key: a SHA-256 lookup hash plus the displayable key encrypted with data_dir's key."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Call',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('caller', fields.ForeignKeyField('models.User', source_field='caller_id', null=True, db_constraint=True, to_field='id', related_name='outgoing_calls', on_delete=OnDelete.SET_NULL)),
                ('callee', fields.ForeignKeyField('models.User', source_field='callee_id', null=True, db_constraint=True, to_field='id', related_name='incoming_calls', on_delete=OnDelete.SET_NULL)),
                ('caller_call_id', fields.CharField(max_length=8)),
                ('callee_call_id', fields.CharField(max_length=8)),
                ('caller_name', fields.CharField(null=True, max_length=32)),
                ('callee_name', fields.CharField(null=True, max_length=32)),
                ('status', fields.CharField(max_length=10)),
                ('started_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'calls', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One call attempt between two Call IDs, written by signaling, read by the call history.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Invite',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token', fields.CharField(unique=True, max_length=36)),
                ('creator', fields.ForeignKeyField('models.User', source_field='creator_id', db_constraint=True, to_field='id', related_name='invites', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('claimed_by', fields.ForeignKeyField('models.User', source_field='claimed_by_id', null=True, db_constraint=True, to_field='id', related_name='claimed_invites', on_delete=OnDelete.SET_NULL)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'invites', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A one-time invite link back to its creator, claimed by the first other account that opens it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Session',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sessions', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A website session. The cookie holds a random token, the table only its SHA-256.'},
            bases=['Model'],
        ),
    ]
