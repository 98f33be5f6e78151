"""WSGI entry point: gunicorn serves every HTTP request (pages, votes, API) through it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdtick.settings")

application = get_wsgi_application()
