"""The static files storage of production: whitenoise's compressed manifest, with each URL built once.

`{% static %}` asks the storage for a file's URL on every page (five times on each), and building
it means cleaning the name, looking up its hashed name in the manifest, quoting it and joining it to
STATIC_URL, each time. The manifest is read once when the process starts and never changes while it
runs, so neither can a URL built from it.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Keys are file names written in templates: a few dozen at most.
        self._url_of_name: dict[str, str] = {}

    def url(self, name: str, force: bool = False) -> str:
        if force:
            return super().url(name, force=True)
        url = self._url_of_name.get(name)
        if url is None:
            url = self._url_of_name[name] = super().url(name)
        return url
