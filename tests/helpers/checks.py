"""Labelled checks for the long real-GIMP scenarios: each prints "ok"/"FAIL" and its label as it goes,
and the test asserts on the list of the failed ones' labels, so that a failure says which."""


class Check(object):
    """One check's label and outcome; true when it passed."""

    def __init__(self, label, passed):
        self.label = label
        self.passed = passed

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return "Check(%r, %r)" % (self.label, self.passed)


def check(label, condition, detail=""):
    passed = bool(condition)
    print("  %-4s %s%s" % ("ok" if passed else "FAIL", label, (": " + detail) if detail else ""))
    return Check(label, passed)


def failed_labels(results):
    """The labels of the checks that failed, in order ([] when every check passed)."""
    return [result.label for result in results if not result.passed]
