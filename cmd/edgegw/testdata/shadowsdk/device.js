// A device written for AWS IoT: the AWS IoT Device SDK for JavaScript's
// thingShadow class, unchanged, against edgegw run. It prints one JSON line
// per event on stdout for the Go test to follow:
//   {"ev":"registered"}, {"ev":"status","stat":..,"doc":..},
//   {"ev":"delta","doc":..}, {"ev":"error","msg":..}
// and, after the first get (the shadow does not exist yet), reports
// {"power":"off"}; it exits after the first delta.
//
// Usage: node device.js HOST PORT CA CERT KEY THING
'use strict';
const awsIot = require('aws-iot-device-sdk');

const [host, port, ca, cert, key, thing] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const shadows = awsIot.thingShadow({
  host, port: Number(port), protocol: 'mqtts',
  caPath: ca, certPath: cert, keyPath: key,
  clientId: thing, keepalive: 10, reconnectPeriod: 500,
});

let step = 'get';
shadows.on('connect', () => {
  shadows.register(thing, { ignoreDeltas: false, persistentSubscribe: true }, (err) => {
    if (err) { out({ ev: 'error', msg: String(err) }); process.exit(1); }
    out({ ev: 'registered' });
    if (shadows.get(thing) === null) { out({ ev: 'error', msg: 'get refused by the SDK' }); process.exit(1); }
  });
});
shadows.on('status', (name, stat, token, doc) => {
  out({ ev: 'status', op: step, stat, doc });
  if (step === 'get') {
    step = 'update';
    if (shadows.update(thing, { state: { reported: { power: 'off' } } }) === null) {
      out({ ev: 'error', msg: 'update refused by the SDK' }); process.exit(1);
    }
  }
});
shadows.on('delta', (name, doc) => {
  out({ ev: 'delta', doc });
  shadows.end(false, () => process.exit(0));
});
shadows.on('timeout', (name, token) => out({ ev: 'timeout', op: step }));
shadows.on('error', (err) => out({ ev: 'error', msg: String(err) }));
