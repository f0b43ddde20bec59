// ioredis defineCommand against ringkv (the port is the argument): a
// script command with keys, sent with EVALSHA, loaded on NOSCRIPT, and in a
// pipeline.
const assert = require("assert");
const Redis = require("ioredis");

async function main() {
  const redis = new Redis({ port: Number(process.argv[2]) });
  redis.defineCommand("casdel", {
    numberOfKeys: 1,
    lua: "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
  });
  redis.defineCommand("pair", { numberOfKeys: 2, lua: "return {KEYS[1], KEYS[2], ARGV[1]}" });
  await redis.set("io:lock", "token");
  assert.strictEqual(await redis.casdel("io:lock", "wrong"), 0);
  assert.strictEqual(await redis.casdel("io:lock", "token"), 1);
  assert.deepStrictEqual(await redis.pair("a", "b", "c"), ["a", "b", "c"]);
  await redis.script("FLUSH");
  assert.deepStrictEqual(await redis.pair("x", "y", "z"), ["x", "y", "z"]);
  const results = await redis.pipeline().set("io:lock", "t2").casdel("io:lock", "t2").exec();
  assert.deepStrictEqual(results, [[null, "OK"], [null, 1]]);
  await redis.quit();
  console.log("ok");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
