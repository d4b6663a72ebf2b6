from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Invite',
            options={'table': 'invites', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A one-time invite link back to its creator, claimed by the first other visitor that opens it.'},
        ),
        ops.AddField(
            model_name='Invite',
            name='claimed_by_anon',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
