import { isIP } from 'node:net';
import { z } from 'zod';
import { CNI_CHOICES } from '../addons/catalog.ts';
import { kubernetesVersion } from './kubernetes-version.ts';
import { tokenNodeName } from './node-name.ts';
import { nodeLabels, taint } from './node-labels.ts';

/**
 * The agent's own config: what `controller node-config` renders into `guestinfo.pke.config`
 * and what `--config FILE` holds. Unknown keys are errors, so a typo never passes silently.
 */

export const ROLES = ['master', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a lower-case DNS label (a-z, 0-9, -)');
const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const pemCertificate = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/;

export const ipv4 = z.string().refine((v) => isIP(v) === 4, 'expected an IPv4 address');

export const cidr = z.string().refine((v) => {
  const [address, prefix, ...rest] = v.split('/');
  if (rest.length > 0 || !address || !prefix || !/^\d+$/.test(prefix)) return false;
  const bits = Number(prefix);
  return (isIP(address) === 4 && bits <= 32) || (isIP(address) === 6 && bits <= 128);
}, 'expected a CIDR such as 10.244.0.0/16');

/** kubeadm's defaults for the pod and service networks. */
export const podCidr = cidr.default('10.244.0.0/16');
export const serviceCidr = cidr.default('10.96.0.0/12');

export const controlPlaneEndpoint = z.strictObject({
  vip: ipv4,
  port: z.number().int().min(1).max(65535).default(6443),
  /** The interface that carries the VIP; default: the one on the VIP's network, else the default route's. */
  interface: z
    .string()
    .regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'expected a network interface name')
    .optional(),
});

/** A MetalLB pool entry: a CIDR or a `FIRST-LAST` IPv4 range. */
const addressPoolEntry = z.string().refine((v) => {
  const range = v.split('-');
  return range.length === 2 ? range.every((address) => isIP(address.trim()) === 4) : cidr.safeParse(v).success;
}, 'expected a CIDR (198.51.100.240/28) or an IPv4 range (198.51.100.240-198.51.100.250)');

/**
 * How the kubelet and containerd's runc manage cgroups: `systemd` where systemd is PID 1 (the
 * image), `cgroupfs` where it is not. A site setting, shared by the cluster spec and the agent config.
 */
const cgroupDriver = z.enum(['systemd', 'cgroupfs']);
export type CgroupDriver = z.infer<typeof cgroupDriver>;

/** Where kubeadm pulls its images from instead of registry.k8s.io: an air-gapped site's mirror. */
const imageRepository = z
  .string()
  .max(255)
  .regex(
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/,
    'expected a registry and path such as registry.example.net/k8s',
  );

/** How a site's hosts run containers: fields of the cluster spec and of every node's agent config. */
export const nodeRuntimeFields = {
  cgroupDriver: cgroupDriver.default('systemd'),
  /**
   * Kubelets from 1.35 refuse cgroup v1 hosts; true keeps them running there (failCgroupV1: false,
   * and kubeadm's SystemVerification, which fails such hosts, skipped).
   */
  allowCgroupV1: z.boolean().default(false),
  imageRepository: imageRepository.optional(),
};

/** Cluster add-ons the leader installs after init; shared by the cluster spec and the agent config. */
export const addonsSchema = z
  .strictObject({
    /** `none`: the site brings its own CNI (nodes stay NotReady until it is there). */
    cni: z.enum(CNI_CHOICES).default('calico'),
    /** kubeadm's own add-ons; off for a CNI that replaces kube-proxy, or a site with its own DNS. */
    kubeProxy: z.boolean().default(true),
    coreDns: z.boolean().default(true),
    /** MetalLB in layer-2 mode, installed only when addresses are given. */
    metallb: z.strictObject({ addresses: z.array(addressPoolEntry).min(1).max(16) }).optional(),
    /**
     * The vSphere CPI and CSI with a default StorageClass; the leader fetches the vCenter
     * connection from the controller, never from this config.
     */
    vsphere: z.strictObject({ storagePolicy: z.string().min(1).max(256).optional() }).optional(),
  })
  .default({ cni: 'calico', kubeProxy: true, coreDns: true });

export const agentConfigSchema = z
  .strictObject({
    cluster: z.strictObject({
      id: dnsLabel,
      name: dnsLabel,
    }),
    role: z.enum(ROLES),
    pool: dnsLabel,
    nodeName: z.string().regex(dnsSubdomain, 'expected a lower-case DNS name').optional(),
    controller: z.strictObject({
      url: z.url({ protocol: /^https$/, error: 'expected an https:// URL' }),
      /** The other replicas of an HA controller (etcd backend), tried in turn after `url`. */
      otherUrls: z
        .array(z.url({ protocol: /^https$/, error: 'expected an https:// URL' }))
        .max(8)
        .optional(),
      caCert: z.string().regex(pemCertificate, 'expected one PEM certificate (-----BEGIN CERTIFICATE-----)'),
      token: z.string().regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'expected a signed JWT'),
    }),
    kubernetes: z.strictObject({
      version: kubernetesVersion,
      podCidr,
      serviceCidr,
      /** `external` when a cloud controller (the vSphere CPI) initializes the nodes: every kubelet runs with --cloud-provider=external. */
      cloudProvider: z.enum(['external']).optional(),
      ...nodeRuntimeFields,
    }),
    controlPlaneEndpoint,
    labels: nodeLabels,
    taints: z.array(taint).default([]),
    addons: addonsSchema,
    /**
     * The cluster's control-plane size, which node-config gives control-plane nodes: an add-on
     * controller that runs one replica per control-plane node (the vSphere CSI's) runs no more.
     */
    controlPlaneNodes: z.number().int().min(1).max(9).optional(),
  })
  .refine((config) => config.nodeName !== undefined || tokenNodeName(config.controller.token) !== undefined, {
    path: ['controller', 'token'],
    message: 'the token names no node (no sub claim) and there is no nodeName: set nodeName',
  });

export type AgentConfig = z.infer<typeof agentConfigSchema>;
/** The config as written by hand or rendered, before defaults are applied. */
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
