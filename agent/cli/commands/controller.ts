import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.ts';
import { CNI_CHOICES } from '../../addons/catalog.ts';
import { UPGRADE_STRATEGIES, type UpgradeStrategy } from '../../protocol/upgrade.ts';

/**
 * `pke-agent controller ...`: flags only. Each handler reaches controller code through
 * `await import()`, so that other commands (and `version`) never load it.
 */

const DEFAULT_DATA_DIR = '/var/lib/pke-controller';
const DEFAULT_LISTEN = '0.0.0.0:9443';
const DEFAULT_URL = 'https://127.0.0.1:9443';

export interface ServeArgs extends GlobalArgs {
  'data-dir': string;
  listen: string;
  san: string[];
  'advertise-url'?: string;
  'peer-url': string[];
  etcd?: string;
  'etcd-ca'?: string;
  'etcd-cert'?: string;
  'etcd-key'?: string;
  'etcd-secret-key'?: string;
  'etcd-prefix'?: string;
}

/** How a CLI command finds and authenticates to a running controller. */
export interface ConnectionArgs extends GlobalArgs {
  url: string;
  'data-dir': string;
  'ca-file'?: string;
  'token-file'?: string;
}

export interface ClusterCreateArgs extends ConnectionArgs {
  name?: string;
  'kubernetes-version'?: string;
  vip?: string;
  port?: number;
  interface?: string;
  'control-plane-nodes'?: number;
  pool?: string[];
  'pod-cidr'?: string;
  'service-cidr'?: string;
  'token-ttl'?: string;
  'lease-ttl'?: string;
  cni?: (typeof CNI_CHOICES)[number];
  'metallb-address'?: string[];
  'cgroup-driver'?: 'systemd' | 'cgroupfs';
  'allow-cgroup-v1'?: boolean;
  'image-repository'?: string;
  file?: string;
  provision?: boolean;
}

export interface ClusterArgs extends ConnectionArgs {
  cluster: string;
}

export interface ClusterBackupArgs extends ClusterArgs {
  wait?: string;
}

export interface ClusterVsphereArgs extends ClusterArgs {
  server: string;
  username: string;
  'password-file': string;
  datacenter: string[];
  insecure?: boolean;
  thumbprint?: string;
  port?: number;
  'vcenter-ca-file'?: string;
}

export interface PoolScaleArgs extends ClusterArgs {
  pool: string;
  size: number;
}

export interface ClusterUpgradeArgs extends ClusterArgs {
  to: string;
  strategy: UpgradeStrategy;
  template?: string;
}

export interface NodeConfigArgs extends ClusterArgs {
  name: string;
  role: 'master' | 'worker';
  pool?: string;
  format: 'govc' | 'terraform' | 'vmx' | 'json';
  'token-ttl'?: string;
}

export interface TokenCreateArgs extends ConnectionArgs {
  role: 'viewer' | 'metrics';
  name?: string;
  ttl?: string;
}

export interface TokenRevokeArgs extends ConnectionArgs {
  jti: string;
}

export interface TimelineArgs extends ClusterArgs {
  width: number;
}

export interface NodeRemoveArgs extends ClusterArgs {
  name: string;
  force?: boolean;
  timeout?: string;
  wait: boolean;
}

export interface NodeReplaceArgs extends ClusterArgs {
  name: string;
  force?: boolean;
  timeout?: string;
  'ready-timeout'?: string;
}

export interface RevokeArgs extends ClusterArgs {
  name?: string;
  jti?: string;
}

function connectionOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('url', { type: 'string', default: DEFAULT_URL, describe: 'The controller to talk to' })
    .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: 'Find ca.crt and admin.token here' })
    .option('ca-file', { type: 'string', describe: 'The controller CA certificate (default: DATA-DIR/ca.crt)' })
    .option('token-file', { type: 'string', describe: 'The admin token (default: DATA-DIR/admin.token)' });
}

const serveCommand: CommandModule<GlobalArgs, ServeArgs> = {
  command: 'serve',
  describe: 'Run the controller: HTTPS API for nodes and admins, state in the data dir',
  builder: (yargs) =>
    yargs
      .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: 'Keys, tokens and state live here (mode 0700)' })
      .option('listen', { type: 'string', default: DEFAULT_LISTEN, describe: 'HOST:PORT to listen on (port 0: any free port)' })
      .option('san', {
        type: 'string',
        array: true,
        default: [] as string[],
        describe: 'Extra DNS name or IP for the serving certificate (repeatable)',
      })
      .option('advertise-url', {
        type: 'string',
        describe: 'The URL node configs point at (default: https://<first non-loopback IPv4>:<port>)',
      })
      .option('peer-url', {
        type: 'string',
        array: true,
        default: [] as string[],
        describe: "Another replica's URL, which node configs carry after this one's (repeatable; with --etcd)",
      })
      .option('etcd', { type: 'string', describe: 'Keep state and secrets in etcd, shared by replicas: client URLs, comma-separated' })
      .option('etcd-ca', { type: 'string', describe: 'CA certificate of the etcd members (PEM)' })
      .option('etcd-cert', { type: 'string', describe: 'Client certificate for etcd (PEM)' })
      .option('etcd-key', { type: 'string', describe: 'Client key for etcd (PEM)' })
      .option('etcd-secret-key', {
        type: 'string',
        describe: 'File (0600) of the keys that seal secrets in etcd, one base64 32-byte key a line, the first current',
      })
      .option('etcd-prefix', { type: 'string', describe: 'Prefix of every key the controller keeps in etcd (default /pke-controller/)' }),
  handler: async (args) => (await import('./controller/serve.ts')).serve(args),
};

const clusterCreateCommand: CommandModule<GlobalArgs, ClusterCreateArgs> = {
  command: 'create',
  describe: 'Create a cluster and its PKI (cluster, etcd and front-proxy CAs; service-account keys)',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('name', { type: 'string', describe: 'Cluster name, a DNS label' })
      .option('kubernetes-version', { type: 'string', describe: 'e.g. 1.31.2' })
      .option('vip', { type: 'string', describe: 'The control-plane endpoint VIP (IPv4)' })
      .option('port', { type: 'number', describe: 'The control-plane endpoint port (default 6443)' })
      .option('interface', { type: 'string', describe: 'The interface that carries the VIP on control-plane nodes' })
      .option('control-plane-nodes', { type: 'number', describe: 'How many control-plane nodes (default 3)' })
      .option('pool', { type: 'string', array: true, describe: 'Worker pool name (repeatable; default: workers)' })
      .option('pod-cidr', { type: 'string', describe: 'default 10.244.0.0/16' })
      .option('service-cidr', { type: 'string', describe: 'default 10.96.0.0/12' })
      .option('token-ttl', { type: 'string', describe: 'Lifetime of node tokens in node configs, e.g. 24h (default)' })
      .option('lease-ttl', { type: 'string', describe: 'Leader lease TTL, e.g. 30s (default)' })
      .option('cni', {
        choices: CNI_CHOICES,
        describe: 'The pod network the leader installs (default calico; none: the site brings its own)',
      })
      .option('metallb-address', {
        type: 'string',
        array: true,
        describe: 'MetalLB layer-2 pool: a CIDR or FIRST-LAST range (repeatable; none: no MetalLB)',
      })
      .option('cgroup-driver', {
        choices: ['systemd', 'cgroupfs'] as const,
        describe: "How the nodes' kubelet and containerd manage cgroups (default systemd; cgroupfs where systemd is not PID 1)",
      })
      .option('allow-cgroup-v1', { type: 'boolean', describe: 'Let kubelets from 1.35 run on cgroup v1 hosts' })
      .option('image-repository', {
        type: 'string',
        describe: 'Where kubeadm pulls its images instead of registry.k8s.io (an air-gapped mirror)',
      })
      .option('file', { type: 'string', describe: 'A YAML or JSON cluster spec (the API body); flags override its fields' })
      .option('provision', {
        type: 'boolean',
        describe: 'The controller clones, powers on and replaces every VM on vSphere (placements and pool sizes from --file)',
      }),
  handler: async (args) => (await import('./controller/cluster.ts')).createCluster(args),
};

const clusterListCommand: CommandModule<GlobalArgs, ConnectionArgs> = {
  command: 'list',
  describe: 'List clusters',
  builder: (yargs) => connectionOptions(yargs),
  handler: async (args) => (await import('./controller/cluster.ts')).listClusters(args),
};

const clusterShowCommand: CommandModule<GlobalArgs, ClusterArgs> = {
  command: 'show',
  describe: 'Show one cluster',
  builder: (yargs) => connectionOptions(yargs).option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' }),
  handler: async (args) => (await import('./controller/cluster.ts')).showCluster(args),
};

const clusterVsphereCommand: CommandModule<GlobalArgs, ClusterVsphereArgs> = {
  command: 'vsphere',
  describe: "Set the cluster's vCenter connection for the vSphere CPI and CSI (kept by the controller, handed only to the leader)",
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('server', { type: 'string', demandOption: true, describe: 'vCenter host name or IP address' })
      .option('username', { type: 'string', demandOption: true, describe: 'vCenter user for the CPI and CSI' })
      .option('password-file', {
        type: 'string',
        demandOption: true,
        describe: 'File holding the password (- for stdin); never a flag, so it stays out of ps and shell history',
      })
      .option('datacenter', { type: 'string', array: true, demandOption: true, describe: 'Datacenter of the node VMs (repeatable)' })
      .option('insecure', { type: 'boolean', describe: "Do not verify vCenter's TLS certificate (labs only)" })
      .option('thumbprint', { type: 'string', describe: "vCenter's certificate fingerprint (hex pairs joined by colons)" })
      .option('port', { type: 'number', describe: "vCenter's HTTPS port (default 443)" })
      .option('vcenter-ca-file', { type: 'string', describe: "PEM CA that vCenter's certificate chains to (default: the system's)" }),
  handler: async (args) => (await import('./controller/cluster.ts')).setVsphere(args),
};

const clusterBackupCommand: CommandModule<GlobalArgs, ClusterBackupArgs> = {
  command: 'backup',
  describe: 'Ask for an etcd snapshot now; a control-plane node takes it and the controller stores it',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('wait', { type: 'string', describe: 'Wait this long for the snapshot to be stored, e.g. 5m (default: do not wait)' }),
  handler: async (args) => (await import('./controller/backups.ts')).requestBackup(args),
};

const clusterBackupsCommand: CommandModule<GlobalArgs, ClusterArgs> = {
  command: 'backups',
  describe: 'List the etcd snapshots the controller keeps for a cluster (newest first) and where their files are',
  builder: (yargs) => connectionOptions(yargs).option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' }),
  handler: async (args) => (await import('./controller/backups.ts')).listBackups(args),
};

const clusterUpgradeCommand: CommandModule<GlobalArgs, ClusterUpgradeArgs> = {
  command: 'upgrade',
  describe:
    "Upgrade the cluster's Kubernetes one minor version at a time, one node at a time: in place (each node runs `pke-agent upgrade`) or by rolling replacement from a new template",
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('to', { type: 'string', demandOption: true, describe: 'The Kubernetes version, e.g. 1.37.2: the same or the next minor' })
      .option('strategy', {
        choices: UPGRADE_STRATEGIES,
        default: 'in-place' as UpgradeStrategy,
        describe:
          'in-place: kubeadm upgrade on each node; replace: a VM from --template joins, then the old node is removed (provisioned clusters)',
      })
      .option('template', { type: 'string', describe: 'replace: the inventory path of the VM template of the new version' }),
  handler: async (args) => (await import('./controller/upgrade.ts')).upgradeCluster(args),
};

const clusterCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'cluster <command>',
  describe: 'Create, list and show clusters; set their vCenter connection',
  builder: (yargs) =>
    yargs
      .command(clusterCreateCommand)
      .command(clusterListCommand)
      .command(clusterShowCommand)
      .command(clusterVsphereCommand)
      .command(clusterBackupCommand)
      .command(clusterBackupsCommand)
      .command(clusterUpgradeCommand)
      .demandCommand(1, 'Name a cluster command: create, list, show, vsphere, backup, backups or upgrade.'),
  handler: () => {},
};

const nodeConfigCommand: CommandModule<GlobalArgs, NodeConfigArgs> = {
  command: 'node-config',
  describe: 'Mint a node token and print the guestinfo one VM needs (govc, terraform, vmx or json)',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('name', { type: 'string', demandOption: true, describe: 'Node (and VM) name' })
      .option('role', { choices: ['master', 'worker'] as const, demandOption: true })
      .option('pool', { type: 'string', describe: "Worker pool (default: the cluster's first pool)" })
      .option('format', { choices: ['govc', 'terraform', 'vmx', 'json'] as const, default: 'govc' as const })
      .option('token-ttl', { type: 'string', describe: "Node token lifetime, e.g. 48h (default: the cluster's)" }),
  handler: async (args) => (await import('./controller/node.ts')).nodeConfig(args),
};

const nodeRevokeCommand: CommandModule<GlobalArgs, RevokeArgs> = {
  command: 'revoke',
  describe: 'Revoke the tokens of a node (--name) or one token (--jti)',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('name', { type: 'string', describe: 'Revoke every token of this node' })
      .option('jti', { type: 'string', describe: 'Revoke the token with this id' })
      .conflicts('name', 'jti'),
  handler: async (args) => (await import('./controller/node.ts')).revoke(args),
};

const nodeRemoveCommand: CommandModule<GlobalArgs, NodeRemoveArgs> = {
  command: 'remove',
  describe: 'Remove a node: drain, etcd member and keepalived peers (control plane), Node, tokens, VM; resumes where a failed run stopped',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('name', { type: 'string', demandOption: true, describe: 'The node to remove' })
      .option('force', {
        type: 'boolean',
        describe: 'Evict pods with no controller; at the timeout, delete pods a disruption budget still protects',
      })
      .option('timeout', { type: 'string', describe: 'How long the drain may take, e.g. 10m (default 5m)' })
      .option('wait', {
        type: 'boolean',
        default: true,
        describe: 'Follow the removal step by step until it ends (--no-wait: start it and return)',
      }),
  handler: async (args) => (await import('./controller/remove.ts')).removeNode(args),
};

const nodeReplaceCommand: CommandModule<GlobalArgs, NodeReplaceArgs> = {
  command: 'replace',
  describe: 'Replace a provisioned node: remove it (its VM destroyed), then wait until the same name is Ready on a new VM',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('name', { type: 'string', demandOption: true, describe: 'The node to replace' })
      .option('force', {
        type: 'boolean',
        describe: 'Evict pods with no controller; at the timeout, delete pods a disruption budget still protects',
      })
      .option('timeout', { type: 'string', describe: 'How long the drain may take, e.g. 10m (default 5m)' })
      .option('ready-timeout', { type: 'string', describe: 'How long the new VM may take to be Ready (default 20m)' }),
  handler: async (args) => (await import('./controller/replace.ts')).replaceNode(args),
};

const nodeCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'node <command>',
  describe: 'Node tokens; removing and replacing nodes',
  builder: (yargs) =>
    yargs
      .command(nodeRevokeCommand)
      .command(nodeRemoveCommand)
      .command(nodeReplaceCommand)
      .demandCommand(1, 'Name a node command: revoke, remove or replace.'),
  handler: () => {},
};

const poolScaleCommand: CommandModule<GlobalArgs, PoolScaleArgs> = {
  command: 'scale',
  describe: "Set a worker pool's size: the controller clones to grow, drains and destroys to shrink",
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('pool', { type: 'string', demandOption: true, describe: 'Worker pool name' })
      .option('size', { type: 'number', demandOption: true, describe: 'How many VMs the pool keeps' }),
  handler: async (args) => (await import('./controller/pool.ts')).scalePool(args),
};

const poolCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'pool <command>',
  describe: 'Worker pools of a cluster the controller provisions',
  builder: (yargs) => yargs.command(poolScaleCommand).demandCommand(1, 'Name a pool command: scale.'),
  handler: () => {},
};

const statusCommand: CommandModule<GlobalArgs, ClusterArgs> = {
  command: 'status',
  describe: 'Show a cluster: leader, join slot, nodes and their phases (--json for the API document)',
  builder: (yargs) => connectionOptions(yargs).option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' }),
  handler: async (args) => (await import('./controller/status.ts')).status(args),
};

const tokenCreateCommand: CommandModule<GlobalArgs, TokenCreateArgs> = {
  command: 'create',
  describe: 'Mint a read-only token: viewer (the web view, the timeline, /metrics) or metrics (/metrics only); prints it',
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('role', { choices: ['viewer', 'metrics'] as const, demandOption: true })
      .option('name', { type: 'string', describe: 'Who or what it is for (shown by token list)' })
      .option('ttl', { type: 'string', describe: 'Lifetime, e.g. 12h or 90d (default 30d)' }),
  handler: async (args) => (await import('./controller/token.ts')).createToken(args),
};

const tokenListCommand: CommandModule<GlobalArgs, ConnectionArgs> = {
  command: 'list',
  describe: 'List the live viewer and metrics tokens (ids, never the tokens)',
  builder: (yargs) => connectionOptions(yargs),
  handler: async (args) => (await import('./controller/token.ts')).listTokens(args),
};

const tokenRevokeCommand: CommandModule<GlobalArgs, TokenRevokeArgs> = {
  command: 'revoke',
  describe: 'Revoke a viewer or metrics token by its id',
  builder: (yargs) => connectionOptions(yargs).option('jti', { type: 'string', demandOption: true, describe: 'The token id (token list)' }),
  handler: async (args) => (await import('./controller/token.ts')).revokeToken(args),
};

const tokenCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'token <command>',
  describe: 'Read-only tokens for people (the web view) and monitoring (/metrics)',
  builder: (yargs) =>
    yargs
      .command(tokenCreateCommand)
      .command(tokenListCommand)
      .command(tokenRevokeCommand)
      .demandCommand(1, 'Name a token command: create, list or revoke.'),
  handler: () => {},
};

const timelineCommand: CommandModule<GlobalArgs, TimelineArgs> = {
  command: 'timeline',
  describe: "Draw a cluster's formation as an SVG on stdout: a row per node, a bar per phase (--json for the timeline document)",
  builder: (yargs) =>
    connectionOptions(yargs)
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster id or name' })
      .option('width', { type: 'number', default: 1000, describe: 'Width of the drawing in pixels' }),
  handler: async (args) => (await import('./controller/timeline.ts')).timeline(args),
};

export const controllerCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'controller <command>',
  describe: 'The control service nodes talk to: leader lease, certificates, join tokens',
  builder: (yargs) =>
    yargs
      .command(serveCommand)
      .command(clusterCommand)
      .command(nodeConfigCommand)
      .command(nodeCommand)
      .command(poolCommand)
      .command(statusCommand)
      .command(timelineCommand)
      .command(tokenCommand)
      .demandCommand(1, 'Name a controller command: serve, cluster, node-config, node, pool, status, timeline or token.'),
  handler: () => {},
};
