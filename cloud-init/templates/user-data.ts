/**
 * The #cloud-config every pke node boots with (`guestinfo.userdata`). `{{ name }}` marks a
 * value; the renderer inserts it as a quoted YAML string. Kept small: a node's whole guestinfo
 * must stay under 4 KiB, and cloud-init's VMware datasource redacts it after reading.
 *
 * - hostname with preserve_hostname: false sets the node name on every boot, so a reboot never
 *   brings back the template VM's name; manage_etc_hosts keeps /etc/hosts in step with it.
 * - runcmd runs the agent once per instance; it reads guestinfo.pke.config itself.
 */
export const userDataTemplate = `#cloud-config
hostname: {{ hostname }}
prefer_fqdn_over_hostname: false
preserve_hostname: false
manage_etc_hosts: true
runcmd:
  - [pke-agent, bootstrap]
`;
