"""The project's toolchain: every CLI tool and server that is not a Python
package, built from its published source at the version ``versions.yaml``
pins, into a per-user cache (``toolchain.cache``) that every clone shares.

``python -m toolchain`` (``nox -s tools``) builds or finds them and says
where each came from and how long it took.
"""
