import { createRequire } from 'node:module';
import { getAsset } from 'node:sea';
import { Script } from 'node:vm';
import { start } from './entry.ts';

/**
 * The single executable's entry. The CLI bundle (2 MB with its libraries) is a SEA asset,
 * compiled only when a command other than `version` runs, with a V8 code cache made at build
 * time; so `pke-agent version` costs about what `node -e 0` does.
 */
start(async () => {
  // The asset is already wrapped as a CommonJS function (scripts/build.mjs), byte for byte what the cache was made from.
  const script = new Script(getAsset('cli.cjs', 'utf8'), { filename: 'pke-agent-cli.cjs', cachedData: Buffer.from(getAsset('cli.cache')) });
  if (script.cachedDataRejected && process.env.PKE_DEBUG) process.stderr.write('pke-agent: the CLI code cache was rejected\n');
  const module = { exports: {} as { main: (argv: string[]) => Promise<number> } };
  const compiled = script.runInThisContext() as (...args: unknown[]) => void;
  compiled(module.exports, createRequire(process.execPath), module, process.execPath, process.cwd());
  return module.exports;
});
