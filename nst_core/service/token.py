"""The service's token: the one key to ``nst-core serve``. Made on the service's first start in the
engine's data folder (mode 0600), copied to the machines that may use the service, sent by each request
as ``Authorization: Bearer <token>`` (docs/SERVICE.md)."""

import hmac
import os
import secrets
import stat

from ..errors import BadInput

TOKEN_FILE_NAME = "service-token"


def default_token_file():
    from ..engine.weights import data_dir

    return os.path.join(data_dir(), TOKEN_FILE_NAME)


def load_or_create_token(path):
    """The service's token: read from ``path``, or made there on first start (mode 0600).

    A token file that others may read is refused rather than used: the token would no longer be a secret.
    """
    path = os.path.abspath(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if os.name == "posix" and mode & 0o077:
            raise BadInput(f"the token file {path} can be read by other users (mode {mode:04o}): "
                           f"run `chmod 600 {path}`, or delete it for a new token") from None
        with open(path, encoding="ascii") as handle:
            token = handle.read().strip()
        if len(token) < 16:
            raise BadInput(f"the token file {path} holds no usable token (at least 16 characters): "
                           "delete it and start again for a new one") from None
        return token
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return load_or_create_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token


def token_matches(header, token):
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode("ascii"))


def read_token(path):
    try:
        with open(path, encoding="ascii") as handle:
            token = handle.read().strip()
    except FileNotFoundError:
        raise BadInput(f"no token file at {path}: copy the service's token file (printed when "
                       "`nst-core serve` starts) to this machine and pass --token-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the token file {path}: {exc}") from None
    if not token:
        raise BadInput(f"the token file {path} is empty: copy the service's token file again")
    return token
