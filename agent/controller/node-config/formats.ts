import type { Guestinfo } from '../../protocol/api.ts';

/** One node's guestinfo, written for the tool that clones the VM. */

export type GuestinfoFormat = 'govc' | 'terraform' | 'vmx' | 'json';

export function formatGuestinfo(format: GuestinfoFormat, vmName: string, guestinfo: Guestinfo): string {
  const entries = Object.entries(guestinfo);
  switch (format) {
    case 'govc':
      // A ready command line: `govc vm.change -vm NAME -e key=value ...`.
      return ['govc vm.change', '-vm', shellQuote(vmName), ...entries.map(([k, v]) => `-e ${shellQuote(`${k}=${v}`)}`)].join(' ');
    case 'terraform': {
      // The extra_config argument of a vsphere_virtual_machine resource.
      const width = Math.max(...entries.map(([k]) => JSON.stringify(k).length));
      const lines = entries.map(([k, v]) => `  ${JSON.stringify(k).padEnd(width)} = ${JSON.stringify(v)}`);
      return ['extra_config = {', ...lines, '}'].join('\n');
    }
    case 'vmx':
      return entries.map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n');
    case 'json':
      return JSON.stringify(guestinfo, null, 2);
  }
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:=+@-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
