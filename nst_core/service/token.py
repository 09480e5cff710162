"""The service's token: the one key to ``nst-core serve``. Made on the service's first start in the
engine's data folder (mode 0600), copied to the machines that may use the service, sent by each request
as ``Authorization: Bearer <token>`` (docs/SERVICE.md)."""

import hmac
import os
import re
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


# ----- clients: one token file each, in a folder beside the service's own token file -----------------

CLIENTS_FOLDER_NAME = "service-clients"
# The client the service's own token file stands for (it keeps working beside the folder).
DEFAULT_CLIENT = "default"
CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def default_clients_dir(token_file):
    return os.path.join(os.path.dirname(os.path.abspath(token_file)), CLIENTS_FOLDER_NAME)


def _client_path(folder, name):
    if not CLIENT_NAME.match(name or "") or name == DEFAULT_CLIENT:
        raise BadInput(f"{name!r} is not a client name this service takes: letters, digits, '.', '_' and '-', "
                       f"at most 64, starting with a letter or digit, and not {DEFAULT_CLIENT!r}")
    return os.path.join(folder, name)


def add_client(folder, name):
    """Makes the client ``name``'s token file (mode 0600) in ``folder``; returns its path. An existing client
    is not replaced: revoke it first."""
    path = _client_path(folder, name)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"the client {name!r} exists ({path}): revoke it first (--revoke-client {name}) "
                       "for a new token") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return path


def revoke_client(folder, name):
    path = _client_path(folder, name)
    try:
        os.remove(path)
    except FileNotFoundError:
        raise BadInput(f"no client {name!r} in {folder} (--list-clients shows them)") from None
    return path


def list_clients(folder):
    try:
        return sorted(n for n in os.listdir(folder) if CLIENT_NAME.match(n) and os.path.isfile(os.path.join(folder, n)))
    except FileNotFoundError:
        return []


class Keys:
    """Who a request's token belongs to: the service's own token (the client ``default``), or one of the
    clients' token files. The folder is read again at each request, so a client deleted from it (revoked)
    is refused from its next request on, without a restart; each file is read again only when it changed."""

    def __init__(self, token, clients_dir):
        self.token = token
        self.clients_dir = clients_dir
        self._read = {}  # name -> ((mtime_ns, size), token)

    def client_of(self, header):
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = given.strip().encode("utf-8", "surrogateescape")
        found = DEFAULT_CLIENT if hmac.compare_digest(given, self.token.encode("ascii")) else None
        for name, token in self._clients():
            if hmac.compare_digest(given, token.encode("ascii")) and found is None:
                found = name
        return found

    def _clients(self):
        if not self.clients_dir:
            return []
        current = {}
        for name in list_clients(self.clients_dir):
            path = os.path.join(self.clients_dir, name)
            try:
                info = os.stat(path)
                if os.name == "posix" and stat.S_IMODE(info.st_mode) & 0o077:
                    continue  # readable by others: no longer a secret, not taken
                key = (info.st_mtime_ns, info.st_size)
                known = self._read.get(name)
                if known is None or known[0] != key:
                    with open(path, encoding="ascii") as handle:
                        known = (key, handle.read().strip())
                if len(known[1]) >= 16:
                    current[name] = known
            except (OSError, UnicodeDecodeError):
                continue
        self._read = current
        return [(name, token) for name, (_, token) in current.items()]
