/**
 * The VMs the controller provisioned (issue #15 implements this for vSphere): a node removal
 * powers off and destroys the node's VM when the controller made it, and leaves every other VM
 * to the operator. `controller node replace` is a removal followed by `provision`: the new node
 * joins through the join slot like any other.
 */
export interface NodeMachines {
  /** Whether this node's VM is the controller's to destroy. */
  owns(cluster: string, node: string): Promise<boolean>;
  /** Powers the VM off and destroys it; a VM that is gone already is fine. */
  destroy(cluster: string, node: string, signal: AbortSignal): Promise<void>;
  /** Clones and powers on a VM for a new node of the cluster, its guestinfo rendered by the controller. */
  provision?(cluster: string, node: { name: string; role: 'master' | 'worker'; pool?: string }, signal: AbortSignal): Promise<void>;
  /** The Kubernetes version a VM template carries (its TEMPLATE_VERSION_KEY), undefined when it names none; throws when there is no such template. */
  templateKubernetesVersion?(cluster: string, template: string): Promise<string | undefined>;
}

/** The ExtraConfig key in which the image build (packer/pke-node.pkr.hcl) records the template's Kubernetes version. */
export const TEMPLATE_VERSION_KEY = 'pke.image.kubernetes-version';
