/**
 * cloud-init metadata (`guestinfo.metadata`), JSON. `redact` names the guestinfo keys that
 * cloud-init's VMware datasource overwrites with `---` (and their `.encoding` with a space)
 * right after reading them; pke-agent redacts `guestinfo.pke.config` itself once it has read it.
 */
export const metaDataTemplate = `{"instance-id": {{ instanceId }}, "local-hostname": {{ hostname }}, "redact": ["userdata", "vendordata"]}
`;
