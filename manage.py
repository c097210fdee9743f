#!/usr/bin/env python
import os
import secrets
import sys

# Commands that only read the code (no request is signed, no secret is stored or read) run on a
# fresh checkout too: they get a throwaway SECRET_KEY where none is set. Every other command
# needs the real one (bin/run writes it to var/mailgate.env).
OFFLINE_COMMANDS = {"check", "makemigrations", "showmigrations", "spectacular"}


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    if len(sys.argv) > 1 and sys.argv[1] in OFFLINE_COMMANDS:
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
