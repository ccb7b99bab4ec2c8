"""Follow the registry alias: poll who holds ``@champion``, load a new holder in the background,
hand it to the engine (which swaps between batches), keep serving the old one if the load fails."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from drugslm_core.serving.model import ServedModel

log = logging.getLogger("drugslm.serving")


class AliasWatcher:
    def __init__(
        self,
        resolve: Callable[[], str | None],
        load: Callable[[str], ServedModel],
        current_version: Callable[[], str],
        on_loaded: Callable[[ServedModel], None],
        on_failure: Callable[[str, Exception], None],
        interval_s: float,
    ) -> None:
        """``resolve``: the version now behind the alias (``None``: no holder); ``load``: a version
        loaded and checked; ``current_version``: what the engine serves or is about to."""
        self._resolve, self._load, self._current = resolve, load, current_version
        self._on_loaded, self._on_failure = on_loaded, on_failure
        self._interval = interval_s
        self._stop = threading.Event()
        self._failed: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="drugslm-alias-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.check_once()

    def check_once(self) -> None:
        try:
            version = self._resolve()
        except Exception as error:  # the registry is down: keep serving, try again next poll
            log.warning("alias watcher: cannot reach the registry (%s); still serving v%s", error, self._current())
            return
        if version is None or version == self._current() or version in self._failed:
            return  # a version that failed to load is not retried until the alias moves to another
        log.info("alias moved to v%s: loading it in the background", version)
        try:
            served = self._load(version)
        except Exception as error:
            self._failed.add(version)
            log.error("loading v%s failed (%s); still serving v%s", version, error, self._current())
            self._on_failure(version, error)
            return
        self._on_loaded(served)
