"""Operations tooling backed by ZenML (kept out of ``drugslm_core``, which never imports ZenML).

Run from the repository root: ``python -m ops.schedules --help`` or ``drugslm schedule --help``.
"""
