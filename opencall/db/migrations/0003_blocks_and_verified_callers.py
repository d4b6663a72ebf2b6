from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_invite_anonymous_claim')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Block',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='blocks', on_delete=OnDelete.CASCADE)),
                ('call_id', fields.CharField(max_length=8)),
                ('principal', fields.CharField(null=True, max_length=40)),
                ('label', fields.CharField(null=True, max_length=48)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'blocks', 'app': 'models', 'unique_together': (('owner', 'call_id'),), 'pk_attr': 'id', 'table_description': 'A caller that ``owner`` refused: a Call ID, and the identity behind it when it was known.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Call',
            name='blocked',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='Call',
            name='callee_username',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Call',
            name='caller_principal',
            field=fields.CharField(null=True, max_length=40),
        ),
        ops.AddField(
            model_name='Call',
            name='caller_username',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Invite',
            name='revoked_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='User',
            name='block_strangers',
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]
