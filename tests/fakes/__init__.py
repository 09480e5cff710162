"""Test doubles for the GIMP plug-in's tests: an in-memory gimpfu and a fake engine program."""
