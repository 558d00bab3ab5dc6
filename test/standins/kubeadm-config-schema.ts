// STAND-IN support, for tests only: the field sets of kubeadm's config API per version
// (kubeadm.k8s.io v1beta3 for Kubernetes 1.22-1.30, v1beta4 from 1.31; from kubeadm's types.go),
// and of the kubelet's KubeletConfiguration. The kubeadm stand-in checks its --config the way
// `kubeadm config validate` does: an unknown field is an error (init and join only warn).

/** A field's shape; objects list their fields, so anything not listed is unknown. */
export type Spec =
  | 'string'
  | 'int'
  | 'bool'
  | 'duration'
  | 'strings'
  | 'stringMap'
  | 'boolMap'
  | 'any'
  | { object: Fields; name: string }
  | { list: Spec; name: string };
export type Fields = Record<string, Spec>;

const object = (name: string, fields: Fields): Spec => ({ object: fields, name });
const list = (name: string, item: Spec): Spec => ({ list: item, name });

const TYPE_META: Fields = { apiVersion: 'string', kind: 'string' };
const apiEndpoint = object('APIEndpoint', { advertiseAddress: 'string', bindPort: 'int' });
const taints = list('[]v1.Taint', object('Taint', { key: 'string', value: 'string', effect: 'string', timeAdded: 'string' }));
const hostPathMounts = list(
  '[]HostPathMount',
  object('HostPathMount', { name: 'string', hostPath: 'string', mountPath: 'string', readOnly: 'bool', pathType: 'string' }),
);
const patches = object('Patches', { directory: 'string' });
const bootstrapTokens = list(
  '[]BootstrapToken',
  object('BootstrapToken', {
    token: 'string',
    description: 'string',
    ttl: 'duration',
    expires: 'string',
    usages: 'strings',
    groups: 'strings',
  }),
);
const bootstrapTokenDiscovery = object('BootstrapTokenDiscovery', {
  token: 'string',
  apiServerEndpoint: 'string',
  caCertHashes: 'strings',
  unsafeSkipCAVerification: 'bool',
});
const fileDiscovery = object('FileDiscovery', { kubeConfigPath: 'string' });
const imageMeta: Fields = { imageRepository: 'string', imageTag: 'string' };

// --- v1beta3 -----------------------------------------------------------------------------------
const v1beta3Component: Fields = { extraArgs: 'stringMap', extraVolumes: hostPathMounts };
const v1beta3NodeRegistration = object('NodeRegistrationOptions', {
  name: 'string',
  criSocket: 'string',
  taints,
  kubeletExtraArgs: 'stringMap',
  ignorePreflightErrors: 'strings',
  imagePullPolicy: 'string',
});

const v1beta3: Record<string, Fields> = {
  InitConfiguration: {
    ...TYPE_META,
    bootstrapTokens,
    nodeRegistration: v1beta3NodeRegistration,
    localAPIEndpoint: apiEndpoint,
    certificateKey: 'string',
    skipPhases: 'strings',
    patches,
  },
  ClusterConfiguration: {
    ...TYPE_META,
    etcd: object('Etcd', {
      local: object('LocalEtcd', {
        ...imageMeta,
        dataDir: 'string',
        extraArgs: 'stringMap',
        serverCertSANs: 'strings',
        peerCertSANs: 'strings',
      }),
      external: object('ExternalEtcd', { endpoints: 'strings', caFile: 'string', certFile: 'string', keyFile: 'string' }),
    }),
    networking: object('Networking', { serviceSubnet: 'string', podSubnet: 'string', dnsDomain: 'string' }),
    kubernetesVersion: 'string',
    controlPlaneEndpoint: 'string',
    apiServer: object('APIServer', { ...v1beta3Component, certSANs: 'strings', timeoutForControlPlane: 'duration' }),
    controllerManager: object('ControlPlaneComponent', v1beta3Component),
    scheduler: object('ControlPlaneComponent', v1beta3Component),
    dns: object('DNS', imageMeta),
    certificatesDir: 'string',
    imageRepository: 'string',
    featureGates: 'boolMap',
    clusterName: 'string',
  },
  JoinConfiguration: {
    ...TYPE_META,
    nodeRegistration: v1beta3NodeRegistration,
    caCertPath: 'string',
    discovery: object('Discovery', {
      bootstrapToken: bootstrapTokenDiscovery,
      file: fileDiscovery,
      tlsBootstrapToken: 'string',
      timeout: 'duration',
    }),
    controlPlane: object('JoinControlPlane', { localAPIEndpoint: apiEndpoint, certificateKey: 'string' }),
    skipPhases: 'strings',
    patches,
  },
};

// --- v1beta4 -----------------------------------------------------------------------------------
const args = list('[]v1beta4.Arg', object('Arg', { name: 'string', value: 'string' }));
const envs = list('[]EnvVar', object('EnvVar', { name: 'string', value: 'string', valueFrom: 'any' }));
const v1beta4Component: Fields = { extraArgs: args, extraVolumes: hostPathMounts, extraEnvs: envs };
const v1beta4NodeRegistration = object('NodeRegistrationOptions', {
  name: 'string',
  criSocket: 'string',
  taints,
  kubeletExtraArgs: args,
  ignorePreflightErrors: 'strings',
  imagePullPolicy: 'string',
  imagePullSerial: 'bool',
});
const timeouts = object('Timeouts', {
  controlPlaneComponentHealthCheck: 'duration',
  kubeletHealthCheck: 'duration',
  kubernetesAPICall: 'duration',
  etcdAPICall: 'duration',
  tlsBootstrap: 'duration',
  discovery: 'duration',
  upgradeManifests: 'duration',
});

const v1beta4: Record<string, Fields> = {
  InitConfiguration: {
    ...TYPE_META,
    bootstrapTokens,
    dryRun: 'bool',
    nodeRegistration: v1beta4NodeRegistration,
    localAPIEndpoint: apiEndpoint,
    certificateKey: 'string',
    skipPhases: 'strings',
    patches,
    timeouts,
  },
  ClusterConfiguration: {
    ...TYPE_META,
    etcd: object('Etcd', {
      local: object('LocalEtcd', {
        ...imageMeta,
        dataDir: 'string',
        extraArgs: args,
        extraEnvs: envs,
        serverCertSANs: 'strings',
        peerCertSANs: 'strings',
      }),
      external: object('ExternalEtcd', { endpoints: 'strings', caFile: 'string', certFile: 'string', keyFile: 'string' }),
    }),
    networking: object('Networking', { serviceSubnet: 'string', podSubnet: 'string', dnsDomain: 'string' }),
    kubernetesVersion: 'string',
    controlPlaneEndpoint: 'string',
    apiServer: object('APIServer', { ...v1beta4Component, certSANs: 'strings' }),
    controllerManager: object('ControlPlaneComponent', v1beta4Component),
    scheduler: object('ControlPlaneComponent', v1beta4Component),
    dns: object('DNS', { ...imageMeta, disabled: 'bool' }),
    proxy: object('Proxy', { disabled: 'bool' }),
    certificatesDir: 'string',
    imageRepository: 'string',
    featureGates: 'boolMap',
    clusterName: 'string',
    encryptionAlgorithm: 'string',
    certificateValidityPeriod: 'duration',
    caCertificateValidityPeriod: 'duration',
  },
  JoinConfiguration: {
    ...TYPE_META,
    dryRun: 'bool',
    nodeRegistration: v1beta4NodeRegistration,
    caCertPath: 'string',
    discovery: object('Discovery', { bootstrapToken: bootstrapTokenDiscovery, file: fileDiscovery, tlsBootstrapToken: 'string' }),
    controlPlane: object('JoinControlPlane', { localAPIEndpoint: apiEndpoint, certificateKey: 'string' }),
    skipPhases: 'strings',
    patches,
    timeouts,
  },
};

// --- kubelet.config.k8s.io/v1beta1 ---------------------------------------------------------------
const KUBELET_FIELDS = `enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency httpCheckFrequency staticPodURL
staticPodURLHeader address port readOnlyPort tlsCertFile tlsPrivateKeyFile tlsCipherSuites tlsMinVersion rotateCertificates
serverTLSBootstrap authentication authorization registryPullQPS registryBurst eventRecordQPS eventBurst enableDebuggingHandlers
enableContentionProfiling healthzPort healthzBindAddress oomScoreAdj clusterDomain clusterDNS streamingConnectionIdleTimeout
nodeStatusUpdateFrequency nodeStatusReportFrequency nodeLeaseDurationSeconds imageMinimumGCAge imageMaximumGCAge
imageGCHighThresholdPercent imageGCLowThresholdPercent volumeStatsAggPeriod kubeletCgroups systemCgroups cgroupRoot cgroupsPerQOS
cpuManagerPolicy cpuManagerPolicyOptions cpuManagerReconcilePeriod memoryManagerPolicy topologyManagerPolicy topologyManagerScope
topologyManagerPolicyOptions qosReserved runtimeRequestTimeout hairpinMode maxPods podCIDR podPidsLimit resolvConf runOnce
cpuCFSQuota cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles contentType kubeAPIQPS kubeAPIBurst serializeImagePulls
maxParallelImagePulls evictionHard evictionSoft evictionSoftGracePeriod evictionPressureTransitionPeriod evictionMaxPodGracePeriod
evictionMinimumReclaim podsPerCore enableControllerAttachDetach protectKernelDefaults makeIPTablesUtilChains iptablesMasqueradeBit
iptablesDropBit featureGates failSwapOn memorySwap containerLogMaxSize containerLogMaxFiles containerLogMaxWorkers
containerLogMonitorInterval configMapAndSecretChangeDetectionStrategy systemReserved kubeReserved reservedSystemCPUs
showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup enforceNodeAllocatable allowedUnsafeSysctls volumePluginDir
providerID kernelMemcgNotification logging enableSystemLogHandler enableSystemLogQuery shutdownGracePeriod
shutdownGracePeriodCriticalPods shutdownGracePeriodByPodPriority crashLoopBackOff reservedMemory enableProfilingHandler
enableDebugFlagsHandler seccompDefault memoryThrottlingFactor registerWithTaints registerNode tracing localStorageCapacityIsolation
containerRuntimeEndpoint imageServiceEndpoint failCgroupV1 singleProcessOOMKill`.split(/\s+/);

const kubeletConfiguration: Fields = {
  ...TYPE_META,
  ...Object.fromEntries(KUBELET_FIELDS.map((name) => [name, 'any' as Spec])),
  cgroupDriver: 'string',
};

export const KUBEADM_V1BETA3 = 'kubeadm.k8s.io/v1beta3';
export const KUBEADM_V1BETA4 = 'kubeadm.k8s.io/v1beta4';
export const KUBELET_CONFIG_API = 'kubelet.config.k8s.io/v1beta1';
export const KUBE_PROXY_CONFIG_API = 'kubeproxy.config.k8s.io/v1alpha1';

/** The known kinds of an apiVersion, or undefined for an unknown apiVersion. */
export function schemaFor(apiVersion: string): Record<string, Fields> | undefined {
  if (apiVersion === KUBEADM_V1BETA3) return v1beta3;
  if (apiVersion === KUBEADM_V1BETA4) return v1beta4;
  if (apiVersion === KUBELET_CONFIG_API) return { KubeletConfiguration: kubeletConfiguration };
  // kube-proxy's own component config is passed through to kube-proxy; not checked here.
  if (apiVersion === KUBE_PROXY_CONFIG_API) return { KubeProxyConfiguration: {} };
  return undefined;
}

/** Every problem with one document, each naming the field path. */
export function validateDocument(doc: Record<string, unknown>, fields: Fields, kind: string): string[] {
  if (kind === 'KubeProxyConfiguration') return [];
  const errors: string[] = [];
  checkObject(doc, fields, '', kind, errors);
  return errors;
}

/** `struct` is the Go type holding the fields: encoding/json names it before the field path. */
function checkObject(value: Record<string, unknown>, fields: Fields, prefix: string, struct: string, errors: string[]): void {
  for (const [key, child] of Object.entries(value)) {
    const spec = fields[key];
    const path = prefix ? `${prefix}.${key}` : key;
    if (!spec) errors.push(`strict decoding error: unknown field "${path}"`);
    else check(child, spec, path, struct, errors);
  }
}

const DURATION = /^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$/;

function check(value: unknown, spec: Spec, path: string, struct: string, errors: string[]): void {
  if (value === null || spec === 'any') return;
  const got = Array.isArray(value) ? 'array' : typeof value;
  const wrong = (want: string) => errors.push(`json: cannot unmarshal ${got} into Go struct field ${struct}.${path} of type ${want}`);
  switch (spec) {
    case 'string':
      if (typeof value !== 'string') wrong('string');
      return;
    case 'bool':
      if (typeof value !== 'boolean') wrong('bool');
      return;
    case 'int':
      if (!Number.isInteger(value)) wrong('int32');
      return;
    case 'duration':
      if (typeof value !== 'string') wrong('v1.Duration');
      else if (!DURATION.test(value)) errors.push(`time: invalid duration "${value}" in field ${path}`);
      return;
    case 'strings':
      if (!Array.isArray(value)) wrong('[]string');
      else for (const [i, item] of value.entries()) check(item, 'string', `${path}[${i}]`, struct, errors);
      return;
    case 'stringMap':
    case 'boolMap': {
      const item = spec === 'stringMap' ? 'string' : 'bool';
      if (got !== 'object') wrong(`map[string]${item}`);
      else
        for (const [key, child] of Object.entries(value as Record<string, unknown>)) check(child, item, `${path}.${key}`, struct, errors);
      return;
    }
  }
  if ('list' in spec) {
    if (!Array.isArray(value)) wrong(spec.name);
    else for (const [i, item] of value.entries()) check(item, spec.list, `${path}[${i}]`, struct, errors);
  } else if (got !== 'object') {
    wrong(spec.name);
  } else {
    checkObject(value as Record<string, unknown>, spec.object, path, spec.name, errors);
  }
}
