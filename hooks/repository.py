"""The repository's home: one setting, ``extra.repository`` in mkdocs.yml.

Everything the site says about where the repository lives comes from it:

- as an MkDocs hook (``on_config``), the repository button in the header
  (``repo_url``, ``repo_name``) and the edit links (``edit_uri``, by default
  ``EDIT_URI``);
- as the mkdocs-macros module, the pages' links to it:
  ``{{ repository_link("this repository") }}`` is a link while the setting
  has a value and plain text while it is empty.

While it is empty, which it is until the project has a public home, the site
shows no button and no link to a repository that does not exist.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mkdocs.exceptions import PluginError

SETTING = "repository"
# Where a page's source is edited, under the repository's address (GitHub's
# and GitLab's form, on the main branch).
EDIT_URI = "edit/main/docs/"


def home(extra) -> str:
    """The setting's value without a trailing slash ("" while unset); an
    address that is not an http(s) URL stops the build."""
    value = str((extra or {}).get(SETTING) or "").strip().rstrip("/")
    if value and not (urlsplit(value).scheme in ("http", "https") and urlsplit(value).netloc):
        raise PluginError(f"mkdocs.yml extra.{SETTING} must be the repository's https:// address, "
                          f"or empty while it has none: {value!r}")
    return value


def on_config(config, **kwargs):
    repository = home(config.extra)
    if repository:
        config.repo_url = repository
        config.repo_name = urlsplit(repository).path.strip("/") or urlsplit(repository).netloc
        config.edit_uri = config.edit_uri or EDIT_URI
    else:
        # No button, and no edit link (mkdocs would build one from edit_uri alone).
        config.repo_url = None
        config.repo_name = None
        config.edit_uri = None
        config.edit_uri_template = None
    return config


def define_env(env) -> None:
    """mkdocs-macros: the macros pages use to name the repository."""

    @env.macro
    def repository_link(text: str) -> str:
        repository = home(env.conf.extra)
        return f"[{text}]({repository})" if repository else text
