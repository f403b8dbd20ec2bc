// Sends a fixed scenario through @rudderstack/rudder-sdk-node with its defaults (gzip on,
// batches of 20), as an application would, and prints what the SDK reported as JSON.
// Usage: node send.cjs <dataPlaneUrl> <writeKey> <runId>
'use strict';

const Analytics = require('@rudderstack/rudder-sdk-node');

const [dataPlaneUrl, writeKey, run] = process.argv.slice(2);
const errors = [];
const client = new Analytics(writeKey, {
  dataPlaneUrl,
  logLevel: 'error',
  errorHandler: (err) => errors.push(String(err && err.message ? err.message : err)),
});

const anonymousId = `anon-${run}`;
const userId = `user-${run}`;
const sent = (callback) => (err) => {
  if (err) errors.push(String(err.message || err));
  callback();
};

async function main() {
  const calls = [];
  const call = (method, message) =>
    calls.push(new Promise((resolve) => client[method](message, sent(resolve))));

  call('page', { anonymousId, name: 'Pricing', properties: { url: 'https://shop.example/pricing', title: 'Pricing' } });
  call('track', { anonymousId, event: 'Order Completed', properties: { revenue: 42.5 } });
  call('identify', { userId, anonymousId, traits: { plan: 'pro', seats: 3 } });
  call('group', { userId, groupId: `acme-${run}`, traits: { tier: 'gold' } });
  call('alias', { userId, previousId: `legacy-${run}` });
  for (let i = 0; i < 200; i += 1) {
    call('track', { userId, event: 'Item Viewed', properties: { index: i } });
  }
  await client.flush();
  await Promise.all(calls);
  process.stdout.write(JSON.stringify({ errors, calls: calls.length }));
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ errors: [...errors, String(err)], calls: 0 }));
  process.exitCode = 1;
});
