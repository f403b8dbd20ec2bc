"""The roles get the permissions of predictive scores (apps/segments/scoring): Admin all of
them, Marketer reads them and may train, Viewer reads them."""

from django.db import migrations

SCORE_MODELS = ("scoredefinition", "scoremodelversion")
ADMIN = [f"{op}_{m}" for op in ("add", "change", "delete", "view") for m in SCORE_MODELS] + [
    "train_scoredefinition"
]
MARKETER = ["view_scoredefinition", "view_scoremodelversion", "train_scoredefinition"]
VIEWER = ["view_scoredefinition", "view_scoremodelversion"]


def grant(apps, schema_editor):
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    create_permissions(global_apps.get_app_config("segments"), verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Admin", ADMIN), ("Marketer", MARKETER), ("Viewer", VIEWER)):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(
                *Permission.objects.filter(
                    content_type__app_label="segments", codename__in=codenames
                )
            )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(
        name__in=["Admin", "Marketer", "Viewer"]
    ):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="segments", codename__in=ADMIN)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0002_funnel_function"),
        ("segments", "0002_scores"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
