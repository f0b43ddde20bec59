// node's redlock (v5) over three ringkv servers (the ports are the
// arguments): acquire, refuse a second holder, extend, release.
const assert = require("assert");
const Redis = require("ioredis");
const Redlock = require("redlock").default;

async function main() {
  const clients = process.argv.slice(2).map((port) => new Redis({ port: Number(port) }));
  const redlock = new Redlock(clients, { retryCount: 2, retryDelay: 50, retryJitter: 10 });
  let lock = await redlock.acquire(["rl:resource"], 5000);
  // Redlock answers once a quorum agreed; the last server may answer later.
  await Promise.all(lock.attempts);
  for (const client of clients) {
    assert.strictEqual(await client.get("rl:resource"), lock.value);
    assert.ok((await client.pttl("rl:resource")) > 4000);
  }
  // A second holder is refused while the first holds it.
  await assert.rejects(redlock.acquire(["rl:resource"], 5000));
  lock = await lock.extend(20000);
  await Promise.all(lock.attempts);
  for (const client of clients) {
    assert.ok((await client.pttl("rl:resource")) > 15000);
  }
  await Promise.all((await lock.release()).attempts);
  for (const client of clients) {
    assert.strictEqual(await client.exists("rl:resource"), 0);
  }
  // Free again: using() holds it for the duration of a routine.
  // (A quorum holds it inside, and a quorum released it after.)
  const holding = async () => {
    const held = await Promise.all(clients.map((client) => client.exists("rl:other")));
    return held.reduce((a, b) => a + b, 0);
  };
  await redlock.using(["rl:resource", "rl:other"], 5000, async (signal) => {
    assert.ok(!signal.aborted);
    assert.ok((await holding()) >= 2);
  });
  assert.ok((await holding()) <= 1);
  await Promise.all(clients.map((client) => client.quit()));
  console.log("ok");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
