"""The style targets a :class:`~nst_core.engine.stylizer.Stylizer` keeps between runs: a style's Gram
matrices at one size cost a forward pass, and a warm service or a run of several layers asks for the
same ones again."""

from collections import OrderedDict

DEFAULT_ENTRIES = 64


class StyleCache:
    """Least-recently-used Gram targets by key, with hit and miss counts (``stats()``)."""

    def __init__(self, entries=DEFAULT_ENTRIES):
        self.entries = entries
        self._grams = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self):
        return len(self._grams)

    def keys(self):
        return list(self._grams)

    def get(self, key):
        """The targets stored under ``key`` (now the most recently used), or None."""
        grams = self._grams.get(key)
        if grams is None:
            self.misses += 1
            return None
        self.hits += 1
        self._grams.move_to_end(key)
        return grams

    def put(self, key, grams):
        self._grams[key] = grams
        while len(self._grams) > self.entries:
            self._grams.popitem(last=False)

    def stats(self):
        return {"entries": len(self._grams), "hits": self.hits, "misses": self.misses}
