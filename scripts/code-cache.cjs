// Compiles the wrapped CLI bundle, evaluates its top level (which only defines its exports),
// and writes V8's code cache for it: node scripts/code-cache.cjs SOURCE CACHE
const { readFileSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');

const [source, cache] = process.argv.slice(2);
const script = new Script(readFileSync(source, 'utf8'), { filename: 'pke-agent-cli.cjs' });
const cli = { exports: {} };
script.runInThisContext()(cli.exports, require, cli, source, process.cwd());
if (typeof cli.exports.main !== 'function') throw new Error('code-cache: the CLI bundle exports no main()');
writeFileSync(cache, script.createCachedData());
