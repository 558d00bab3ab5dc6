/** Where kubeadm and the kubelet keep their files on a node, and the agent its kubeadm configs (paths below the host root). */

export const ADMIN_KUBECONFIG = '/etc/kubernetes/admin.conf';
export const KUBELET_KUBECONFIG = '/etc/kubernetes/kubelet.conf';
export const PKI_DIR = '/etc/kubernetes/pki';
export const CLUSTER_CA_CERT = `${PKI_DIR}/ca.crt`;
const MANIFESTS_DIR = '/etc/kubernetes/manifests';

/** The static pods of a stacked control-plane node, as kubeadm writes them. */
export const CONTROL_PLANE_MANIFESTS = ['kube-apiserver.yaml', 'kube-controller-manager.yaml', 'kube-scheduler.yaml', 'etcd.yaml'].map(
  (name) => `${MANIFESTS_DIR}/${name}`,
);

/** The agent's rendered kubeadm configs: mode 0600, they carry a bootstrap token. */
export const KUBEADM_INIT_CONFIG = '/etc/kubernetes/pke/kubeadm-init.yaml';
export const KUBEADM_JOIN_CONFIG = '/etc/kubernetes/pke/kubeadm-join.yaml';
