"""What the tests share: the checkout's paths and commands (``repo``), small test pictures
(``pictures``), the readers of docs/PROTOCOL.md (``protocol_checks``), a live engine process
(``live_engine``), a real service (``service``) and stand-ins for GIMP, the engine and the
installer's world (``fake_*``, ``installer_fakes``). ``tests/`` is on pytest's pythonpath."""
