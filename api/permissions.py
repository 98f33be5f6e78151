"""Who may call the API's writes: programs, and browsers on this site only."""

from django.conf import settings
from rest_framework.permissions import BasePermission

CROSS_SITE = "a page on another site sent this request from a browser (its Origin is not this site)"


class SameSiteOnly(BasePermission):
    """403 for a browser on another site; programs send no Origin and pass.

    The own origin is the one the browser saw: `Host` with its port (nginx passes it on), and
    the scheme nginx reports. Sec-Fetch-Site catches browsers that omit Origin.
    """

    message = f"Refused: {CROSS_SITE}."

    def has_permission(self, request, view) -> bool:
        if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return False
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        return origin == f"{request.scheme}://{request.get_host()}" or origin in settings.CSRF_TRUSTED_ORIGINS
