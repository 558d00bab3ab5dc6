// STAND-IN for swapoff, for tests only. Active swap areas are the lines of PKE_ROOT/proc/swaps
// after its header, as the kernel lists them; `-a` empties the list, `swapoff DEVICE` removes one.
import { exitWith, readNodeFile, recordCall, writeNodeFile } from './standin-common.ts';

const argv = process.argv.slice(2);
recordCall('swapoff', argv);
const swaps = readNodeFile('/proc/swaps');
if (argv.length === 0) exitWith('swapoff: bad usage\nTry \'swapoff --help\' for more information.', 1);
if (swaps === undefined) process.exit(0);
const [header = '', ...areas] = swaps.split('\n');
const keep = argv.includes('-a') ? [] : areas.filter((line) => line.trim() && !argv.includes(line.split(/\s+/)[0] ?? ''));
writeNodeFile('/proc/swaps', `${[header, ...keep].join('\n')}\n`);
