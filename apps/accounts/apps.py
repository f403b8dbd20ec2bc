"""App config for accounts: API tokens and the audit log of changes (the lowest floor)."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    verbose_name = "Accounts and audit"
