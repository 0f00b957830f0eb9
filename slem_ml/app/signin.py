"""Sign-in that resists guessing (SPEC §11): throttling and lock-out, the password check off the event loop,
and every attempt in the audit log.

Gradio's login form posts to ``/login``, whose route awaits the ``auth`` callable it was given; that callable
is a :class:`SignInGate`. For each attempt it

1. refuses at once, with the reason and HTTP 429, a user name or an address that is locked out — no password
   check, so guessing costs the server nothing (:class:`Throttle`: 5 failures within 15 minutes lock the name
   or the address for 15 minutes, doubling with each lock-out that follows within a day);
2. checks the password (argon2: 64 MB and about 0.1 s of CPU, on up to 4 lanes) on a worker thread, one at a
   time by default (``concurrency``), so that pages keep loading while guessers knock;
3. records the attempt — signed in, wrong password, or refused while locked out — in the audit log, written
   by one thread in batches (:class:`AuditQueue`), so a flood of attempts is a few writes a second.

The address is the client's as uvicorn reports it: behind a reverse proxy on the same machine, the
``X-Forwarded-For`` the proxy sets (uvicorn trusts it from 127.0.0.1 only; ``FORWARDED_ALLOW_IPS`` names other
proxies). The middleware of :mod:`slem_ml.app.guard` puts it in :data:`CLIENT_ADDRESS` for the request.
Counts live in this process's memory: a restart forgets them, and servers behind one balancer count apart
(each still locks out after 5).
"""

from __future__ import annotations

import collections
import contextvars
import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from fastapi import HTTPException
from sqlalchemy import Engine

from slem_ml.storage.users import SignInAttempt, record_sign_ins

__all__ = [
    "CLIENT_ADDRESS",
    "FAILURES",
    "LOCK_S",
    "WINDOW_S",
    "AuditQueue",
    "Lock",
    "SignInGate",
    "Throttle",
]

FAILURES = 5  # failed sign-ins within WINDOW_S that lock a user name or an address
WINDOW_S = 15 * 60  # [s]
LOCK_S = 15 * 60  # [s] the first lock-out; each further one within FORGET_S lasts twice the one before
FORGET_S = 24 * 3600  # [s] a key with no failure and no lock-out for this long starts afresh
_MAX_KEYS = 50_000  # keys kept before the forgotten ones are swept (names sprayed by guessers)
#: The client's address for the sign-in being handled (set per request by the guard middleware).
CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("slem_client_address", default="unknown")


@dataclass
class _Key:
    failures: collections.deque[float] = field(default_factory=collections.deque)  # monotonic [s]
    locked_until: float = 0.0  # monotonic [s]
    locks: int = 0  # lock-outs so far (the next lasts LOCK_S * 2**locks)
    last: float = 0.0  # monotonic [s] of the last failure or lock-out


@dataclass(frozen=True)
class Lock:
    """A user name or address that may not sign in yet: which, and for how long [s]."""

    kind: str  # "user name" or "address"
    value: str
    remaining_s: float

    def reason(self) -> str:
        minutes = max(1, math.ceil(self.remaining_s / 60))
        until = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.remaining_s)).strftime("%H:%M UTC")
        return (
            f"too many failed sign-ins for this {self.kind}: try again in {minutes} min (at {until}); "
            f"after {FAILURES} failures within {WINDOW_S // 60} minutes sign-in pauses, longer each time"
        )


class Throttle:
    """Failed sign-ins per key (``("user name", name)``, ``("address", ip)``) and the lock-outs they earn.

    Thread-safe; ``clock`` gives monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        *,
        failures: int = FAILURES,
        window_s: float = WINDOW_S,
        lock_s: float = LOCK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window_s, self.lock_s, self.clock = failures, window_s, lock_s, clock
        self._keys: dict[tuple[str, str], _Key] = {}
        self._mutex = threading.Lock()

    def locked(self, keys: list[tuple[str, str]]) -> Lock | None:
        """The longest lock-out among ``keys`` now, if any."""
        now = self.clock()
        with self._mutex:
            found = [(self._keys[k].locked_until - now, k) for k in keys if k in self._keys]
        remaining, key = max(found, default=(0.0, ("", "")))
        return Lock(key[0], key[1], remaining) if remaining > 0 else None

    def failed(self, keys: list[tuple[str, str]]) -> list[Lock]:
        """Count a failure for each of ``keys``; the lock-outs it starts."""
        now = self.clock()
        started = []
        with self._mutex:
            if len(self._keys) > _MAX_KEYS:
                self._sweep(now)
            for key in keys:
                state = self._keys.setdefault(key, _Key())
                if state.last and now - state.last > FORGET_S:
                    state.locks = 0
                state.last = now
                state.failures.append(now)
                while state.failures and now - state.failures[0] > self.window_s:
                    state.failures.popleft()
                if len(state.failures) >= self.failures:
                    span = self.lock_s * 2**state.locks
                    state.locked_until, state.locks = now + span, state.locks + 1
                    state.failures.clear()
                    started.append(Lock(key[0], key[1], span))
        return started

    def succeeded(self, key: tuple[str, str]) -> None:
        """A correct password for ``key`` (a user name): its failures and lock-out history are forgotten."""
        with self._mutex:
            self._keys.pop(key, None)

    def _sweep(self, now: float) -> None:
        stale = [k for k, s in self._keys.items() if s.locked_until < now and now - s.last > self.window_s]
        for key in stale:
            del self._keys[key]


class AuditQueue:
    """Sign-in attempts written to the audit log by one daemon thread, a batch per ``every_s`` [s].

    :meth:`close` writes what is still queued. A write that fails is retried with the next batch (the
    attempts stay queued), so a locked database delays the log but loses nothing while the server runs."""

    def __init__(self, engine: Engine, *, every_s: float = 1.0, log: Callable[[str], None] = print) -> None:
        self.engine, self.every_s, self.log = engine, every_s, log
        self._queue: list[SignInAttempt] = []
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slem-signin-audit", daemon=True)
        self._thread.start()

    def put(self, attempt: SignInAttempt) -> None:
        with self._mutex:
            self._queue.append(attempt)

    def flush(self) -> None:
        """Write what is queued now (the thread does so every ``every_s``)."""
        with self._mutex:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            record_sign_ins(self.engine, batch)
        except Exception as exc:
            self.log(f"signin: the audit log could not be written ({exc}); retrying")
            with self._mutex:
                self._queue[:0] = batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.flush()


class SignInGate:
    """Gradio's ``auth`` callable is :meth:`sign_in` (a coroutine function: Gradio awaits only those, and
    would take the coroutine an object's ``async __call__`` returns for a yes).

    ``check(name, password) -> bool`` is the password check (it runs on a worker thread); a locked-out name
    or address raises ``HTTPException(429)`` with the reason and ``Retry-After``, before any check."""

    def __init__(
        self,
        check: Callable[[str, str], bool],
        audit: AuditQueue,
        *,
        throttle: Throttle | None = None,
        concurrency: int = 1,
    ) -> None:
        self.check, self.audit = check, audit
        self.throttle = throttle if throttle is not None else Throttle()
        self._concurrency = concurrency
        self._limiter: anyio.CapacityLimiter | None = None  # made on the server's event loop

    async def sign_in(self, name: str, password: str) -> bool:
        """``True`` for a correct password; see the class docstring."""
        address = CLIENT_ADDRESS.get()
        keys = [("user name", name), ("address", address)]
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        async with self._limiter:  # at most `concurrency` checks; the rest wait here, off the loop
            lock = self.throttle.locked(keys)  # judged when its turn comes: earlier guesses count
            if lock is not None:
                self.audit.put(SignInAttempt(name, address, "refused", lock.reason()))
                wait = {"Retry-After": str(math.ceil(lock.remaining_s))}
                raise HTTPException(429, detail=lock.reason(), headers=wait)
            ok = await anyio.to_thread.run_sync(self.check, name, password)
        if ok:
            self.throttle.succeeded(keys[0])
            self.audit.put(SignInAttempt(name, address, "signed_in", ""))
            return True
        started = self.throttle.failed(keys)
        reason = "wrong user name or password"
        if started:
            reason += "; " + started[0].reason()
        self.audit.put(SignInAttempt(name, address, "failed", reason))
        return False
