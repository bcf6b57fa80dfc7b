/**
 * Preloaded into the twin's API processes (`node -r`): resolves the names listed
 * in the file FASTNEXT_TWIN_HOSTS ("name address" lines) before asking the
 * system resolver. It stands in for the cluster DNS: Redis Cluster nodes
 * announce stable hostnames (redis-<i>.redis-headless), which the client then
 * connects to. The file is re-read on every lookup, so a moved node is found.
 */
'use strict';
const dns = require('dns');
const fs = require('fs');

const file = process.env.FASTNEXT_TWIN_HOSTS;
const systemLookup = dns.lookup;

function hostsTable() {
  const table = new Map();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [name, address] = line.trim().split(/\s+/);
      if (name && address) table.set(name, address);
    }
  } catch {
    // No file: system resolver only.
  }
  return table;
}

if (file) {
  dns.lookup = function lookup(hostname, options, callback) {
    const cb = typeof options === 'function' ? options : callback;
    const opts = typeof options === 'function' || options === undefined ? {} : options;
    const address = typeof hostname === 'string' ? hostsTable().get(hostname) : undefined;
    if (address === undefined) return systemLookup.apply(this, arguments);
    const family = address.includes(':') ? 6 : 4;
    if (typeof opts === 'object' && opts.all) process.nextTick(cb, null, [{ address, family }]);
    else process.nextTick(cb, null, address, family);
    return {};
  };
}
