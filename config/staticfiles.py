"""Static files under production settings: hashed, compressed, served by whitenoise, as collected into
the image; and still served when production settings run from a source checkout where collectstatic
never ran (every admin page used to answer 500, "Missing staticfiles manifest entry").

Without the manifest the files keep their plain names and whitenoise finds them in the apps' static
folders (WHITENOISE_USE_FINDERS, set by production.py in that case only), with a warning saying how to
collect them. Once collected, nothing differs from the image."""

import logging
from pathlib import Path

from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger(__name__)
MANIFEST = "staticfiles.json"
COLLECT = "python manage.py collectstatic --noinput --settings=config.settings.production"


def collected(static_root: Path) -> bool:
    return (Path(static_root) / MANIFEST).is_file()


class CollectedOrSourceStaticFilesStorage(CompressedManifestStaticFilesStorage):
    manifest_name = MANIFEST

    def load_manifest(self) -> dict:
        self.collected = self.read_manifest() is not None
        self.warned = False
        return super().load_manifest()

    def stored_name(self, name: str) -> str:
        if self.collected:
            return super().stored_name(name)
        # Said when a page first asks for a file's name, not when collectstatic itself starts.
        if not self.warned:
            self.warned = True
            logger.warning("static files are not collected (no %s in %s): serving them from the source "
                           "tree under their plain names; for hashed, cached-forever names run: %s",
                           MANIFEST, self.location, COLLECT)
        return name
