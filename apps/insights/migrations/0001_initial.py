"""Saved insights and dashboards, and the three roles (Admin, Marketer, Viewer) as groups."""

import apps.insights.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# What each role may do, as (app label, codename). Admin gets every permission there is.
MARKETER = [
    *[("insights", f"{op}_{m}") for op in ("add", "change", "delete", "view")
      for m in ("savedinsight", "dashboard", "dashboarditem")],
    *[("segments", f"{op}_segment") for op in ("add", "change", "view")],
    ("segments", "view_segmentmembership"),
    ("profiles", "view_profile"),
    ("profiles", "view_identity"),
    ("profiles", "view_group"),
    ("profiles", "view_profilemerge"),
    ("events", "view_event"),
    ("events", "view_session"),
]
VIEWER = [perm for perm in MARKETER if perm[1].startswith("view_")]


def create_roles(apps, schema_editor):
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    # Permissions are created after migrate: make them now, so that the groups can hold them.
    for config in global_apps.get_app_configs():
        create_permissions(config, verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(pairs):
        found = []
        for app_label, codename in pairs:
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                found.append(perm)
        return found

    admin, _ = Group.objects.get_or_create(name="Admin")
    admin.permissions.set(Permission.objects.all())
    marketer, _ = Group.objects.get_or_create(name="Marketer")
    marketer.permissions.set(perms(MARKETER))
    viewer, _ = Group.objects.get_or_create(name="Viewer")
    viewer.permissions.set(perms(VIEWER))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Admin", "Marketer", "Viewer"]
    ).delete()


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("sources", "0001_initial"),
        ("events", "0001_initial"),
        ("profiles", "0001_initial"),
        ("segments", "0001_initial"),
        ("workflows", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name='Dashboard',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('description', models.TextField(blank=True)),
                ('share_key', models.CharField(default=apps.insights.models.new_share_key, editable=False, max_length=32, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('owner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='dashboards', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name', 'id'],
            },
        ),
        migrations.CreateModel(
            name='SavedInsight',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('description', models.TextField(blank=True)),
                ('kind', models.CharField(choices=[('trends', 'Trends'), ('funnel', 'Funnel'), ('retention', 'Retention'), ('paths', 'Paths')], max_length=20)),
                ('query', models.JSONField(default=dict)),
                ('share_key', models.CharField(default=apps.insights.models.new_share_key, editable=False, max_length=32, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('owner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='saved_insights', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-updated_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='DashboardItem',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveIntegerField(default=0)),
                ('width', models.PositiveSmallIntegerField(choices=[(1, 'Half width'), (2, 'Full width')], default=1)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('dashboard', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='items', to='insights.dashboard')),
                ('insight', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tiles', to='insights.savedinsight')),
            ],
            options={
                'ordering': ['position', 'id'],
            },
        ),
        migrations.AddField(
            model_name='dashboard',
            name='insights',
            field=models.ManyToManyField(related_name='+', through='insights.DashboardItem', to='insights.savedinsight'),
        ),
        migrations.AddConstraint(
            model_name='dashboarditem',
            constraint=models.UniqueConstraint(fields=('dashboard', 'insight'), name='insights_dashboard_item_uniq'),
        ),
        migrations.RunPython(create_roles, remove_roles),
    ]
