// Compiles the wrapped CLI bundle, runs a few harmless commands through it so that V8 compiles
// the functions a real run needs (the bootstrap path's modules above all), and writes V8's code
// cache for all of that: node scripts/code-cache.cjs SOURCE CACHE
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const path = require('node:path');
const { Script } = require('node:vm');

const [source, cache] = process.argv.slice(2);
const script = new Script(readFileSync(source, 'utf8'), { filename: 'pke-agent-cli.cjs' });
const cli = { exports: {} };
script.runInThisContext()(cli.exports, require, cli, source, process.cwd());
if (typeof cli.exports.main !== 'function') throw new Error('code-cache: the CLI bundle exports no main()');

// Each fails early on purpose (a missing file) or only reads: nothing is written or contacted.
// (No --help: yargs exits the process after printing help.)
const scratch = mkdtempSync(path.join(tmpdir(), 'pke-code-cache-'));
const missing = path.join(scratch, 'missing.yaml');
const exercises = [
  ['bootstrap', '--list-phases'],
  ['bootstrap', '--config', missing, '--root', scratch],
  ['config', 'show', '--config', missing],
  ['status', '--json', '--root', scratch],
  ['controller', 'status', '--cluster', 'none', '--ca-file', missing, '--token-file', missing],
];

(async () => {
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = process.stderr.write = () => true;
  try {
    for (const argv of exercises) await cli.exports.main(argv);
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
    rmSync(scratch, { recursive: true, force: true });
  }
  process.exitCode = 0;
  writeFileSync(cache, script.createCachedData());
})();
