"""Tiny helpers that read settings from the environment and fail loudly on bad values.

A typo in production configuration must stop the process at start-up, not surface
as odd behaviour during an event.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be 0 or 1, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


def env_redis_shards(name: str, home: str) -> list[str]:
    """The Redis servers named by `name` (comma-separated URLs), or `home` alone when it is not set;
    empty when `home` is empty (no Redis: embedded mode). Every URL must be a Redis URL, listed once,
    and the list needs `home` set (the broker, rate limits and locks live there)."""
    urls = env_list(name)
    if not urls:
        return [home] if home else []
    if not home:
        raise ImproperlyConfigured(f"{name} needs REDIS_URL set too: the Celery broker and global keys live there")
    for url in urls:
        if not url.startswith(REDIS_URL_SCHEMES):
            raise ImproperlyConfigured(f"{name} must list Redis URLs (redis://host:port/db), got {url!r}")
    if len(set(urls)) != len(urls):
        raise ImproperlyConfigured(f"{name} lists a server twice: {','.join(urls)}")
    return urls
