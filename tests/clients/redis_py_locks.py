"""redis-py's Lock and register_script against ringkv (argv[1]: the port).

Every step asserts; the script exits non-zero on the first failure.
"""
import sys
import threading
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError

r = redis.Redis(port=int(sys.argv[1]))

# acquire / release, and the lock's TTL is set and cleared.
lock = r.lock("py:lock", timeout=5)
assert lock.acquire(blocking=False)
assert 0 < r.pttl("py:lock") <= 5000
assert lock.owned()
assert not r.lock("py:lock", timeout=5).acquire(blocking=False)
lock.release()
assert r.get("py:lock") is None

# `with`, and a second client waits its turn.
with r.lock("py:with", timeout=5, blocking_timeout=2) as held:
    assert held.owned()
    assert r.exists("py:with") == 1
assert r.exists("py:with") == 0

# extend adds to the TTL; replace_ttl sets it; reacquire resets it.
lock = r.lock("py:extend", timeout=2)
assert lock.acquire(blocking=False)
assert lock.extend(10)
assert r.pttl("py:extend") > 10000
assert lock.extend(3, replace_ttl=True)
assert r.pttl("py:extend") <= 3000
assert lock.reacquire()
assert 1000 < r.pttl("py:extend") <= 2000

# Someone else's token is refused: the lock stays.
other = r.lock("py:extend", timeout=2)
other.local.token = b"not-the-owner"
try:
    other.release()
    raise AssertionError("a non-owner released the lock")
except LockNotOwnedError:
    pass
other.local.token = b"not-the-owner"  # release() forgot it
try:
    other.extend(10)
    raise AssertionError("a non-owner extended the lock")
except LockNotOwnedError:
    pass
assert r.exists("py:extend") == 1
lock.release()
try:
    lock.release()
    raise AssertionError("released twice")
except LockError:
    pass

# Contention: the lock goes to one holder at a time.
holders = []
inside = [0]
guard = threading.Lock()


def worker(n):
    client = redis.Redis(port=int(sys.argv[1]))
    for _ in range(5):
        with client.lock("py:contended", timeout=5, sleep=0.01, blocking_timeout=10):
            with guard:
                inside[0] += 1
                assert inside[0] == 1, "two holders at once"
            time.sleep(0.005)
            with guard:
                inside[0] -= 1
            holders.append(n)


threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len(holders) == 20, holders

# register_script: EVALSHA, falling back to loading the script after a flush.
incr = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
assert incr(keys=["py:n"], args=[5]) == 5
r.script_flush()
assert incr(keys=["py:n"], args=[2]) == 7
pipe = r.pipeline()
incr(keys=["py:n"], args=[1], client=pipe)
incr(keys=["py:n"], args=[1], client=pipe)
assert pipe.execute() == [8, 9]
print("ok")
