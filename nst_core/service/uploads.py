"""Where a service keeps its jobs' uploads: ``service-uploads/`` in the engine's data folder, one folder per
running service (several may share a data folder, one per GPU), each held by a lock for the life of its
process. A service that was killed leaves its folder unlocked; the next one to start removes it, so a
``kill -9`` leaves nothing behind once a service has started again."""

import os
import shutil
import tempfile
import time

UPLOADS_FOLDER_NAME = "service-uploads"
LOCK_NAME = "lock"
# A folder without its lock file yet may be another service's in its first instant: left alone until then.
UNLOCKED_GRACE_SECONDS = 60


def default_uploads_root():
    from ..engine.weights import data_dir

    return os.path.join(data_dir(), UPLOADS_FOLDER_NAME)


class UploadsFolder:
    """This service's folder of job folders, locked while it runs; :meth:`sweep` removes dead services' folders."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.removed = self.sweep()
        self.path = tempfile.mkdtemp(prefix="instance-", dir=self.root)
        self._lock = _hold_lock(os.path.join(self.path, LOCK_NAME))

    def job_folder(self):
        return tempfile.mkdtemp(prefix="job-", dir=self.path)

    def sweep(self):
        """Removes the folders of services that no longer run; returns how many."""
        removed = 0
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and _owner_gone(entry.path):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _hold_lock(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl
    except ImportError:  # Windows: a file held open cannot be removed, which _owner_gone relies on
        return fd
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _owner_gone(folder):
    lock = os.path.join(folder, LOCK_NAME)
    if not os.path.exists(lock):
        try:
            return time.time() - os.stat(folder).st_mtime > UNLOCKED_GRACE_SECONDS
        except OSError:
            return False
    try:
        import fcntl
    except ImportError:
        try:
            os.remove(lock)  # fails while its service holds it open
            return True
        except OSError:
            return False
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True  # nobody holds it: its service is gone (the kernel drops a killed process's locks)
    except OSError:
        return False
    finally:
        os.close(fd)
