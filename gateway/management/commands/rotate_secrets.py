from django.core.management.base import BaseCommand

from gateway.secrets import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key in MAILGATE_ENCRYPTION_KEYS, "
        "after which the older keys can be removed."
    )

    def handle(self, *args, **options):
        count = secrets_rotate()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secrets with the newest key."))
