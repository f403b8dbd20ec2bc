# The consents app's first migration: empty, so that consent and privacy-request migrations can
# both depend on it.
from django.db import migrations


class Migration(migrations.Migration):
    initial = True

    dependencies: list = []

    operations: list = []
